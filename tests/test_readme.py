"""The README's Python code runs as written: every ```python block, in order, in one
namespace (as one reader's session), in a folder holding the files it names."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from conftest import make_photo, tiny_network
from PIL import Image, ImageCms

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# blocks that talk to a running `fbcnn serve` (tests/test_app*.py check that API)
NEEDS_SERVER = re.compile(r"Client\(\"https?://")


def python_blocks() -> list[tuple[int, str]]:
    """(line of the block's first code line, code) of every ```python block."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def phone_photo(path: Path) -> None:
    """A small JPEG as a phone writes one: EXIF orientation 6, Make, an sRGB profile."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(make_photo(48, 64)).save(path, quality=30, exif=exif.tobytes(),
                                             icc_profile=icc)


def test_readme_python_blocks_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    phone_photo(tmp_path / "photo.jpg")
    published = tmp_path / "path" / "to" / "fbcnn_gray_double.pth"  # a published-style file
    published.parent.mkdir(parents=True)
    torch.save(tiny_network(1, residual=False).state_dict(), published)
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace: dict[str, object] = {"__name__": "__readme__"}
    ran = 0
    for line, code in blocks:
        if NEEDS_SERVER.search(code):
            continue
        # padded so that a traceback names the README's own line numbers
        exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)
        ran += 1
    assert ran >= 2
    # the API block's output: upright, with the photo's metadata
    with Image.open(tmp_path / "photo_restored.png") as out:
        assert out.size == (48, 64)
        assert out.getexif().get(0x010F) == "TestCam"
        assert out.getexif().get(0x0112) == 1
        assert out.info.get("icc_profile")


def test_readme_counts_the_browser_tests_and_says_how_to_run_them() -> None:
    """The tests in tests/e2e are skipped without Chromium: the README says how many (those
    a plain `pytest` collects: not `slow`) and how to run them."""
    import ast

    text = " ".join(README.read_text(encoding="utf-8").split())
    found = re.search(r"The (\d+) browser tests in `tests/e2e` \(marked `e2e`", text)
    assert found, "the README does not count the browser tests"

    def slow(fn: ast.FunctionDef) -> bool:
        return any("slow" in ast.unparse(d) for d in fn.decorator_list)

    count = sum(1 for path in (README.parent / "tests" / "e2e").glob("test_*.py")
                for node in ast.parse(path.read_text(encoding="utf-8")).body
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                and not slow(node))
    assert int(found.group(1)) == count
    said = text[found.start():found.start() + 600]
    assert "skipped" in said and "scripts/install_browser.sh" in said
