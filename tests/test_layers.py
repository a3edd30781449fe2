"""The package's layers (docs/architecture.md): each package imports only from the packages
below it, and at most 8 modules sit at the top of src/fbcnn."""

from __future__ import annotations

import ast
from pathlib import Path

import fbcnn

ROOT = Path(fbcnn.__file__).resolve().parent
# bottom to top; a module may import from its own package and from those before it
LAYERS = ["device", "version", "jpeg", "images", "networks", "engine", "evaluation", "train",
          "frontends"]
FACADE = {"__init__", "__main__"}  # the public face and the CLI entry: above everything


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        if "node_modules" in path.parts:
            continue
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> list[str]:
    """The fbcnn modules `module` imports (relative imports resolved), lazy ones included."""
    package = module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "fbcnn" or target.startswith("fbcnn."):
                out += [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "fbcnn"]
    return out


def _layer(module: str) -> str:
    """'jpeg' for fbcnn.jpeg.qf, 'device' for fbcnn.device, '__init__' for fbcnn.__init__."""
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def test_no_import_runs_back_up():
    wrong = []
    for module, path in _modules().items():
        own = _layer(module)
        if own in FACADE:
            continue
        assert own in LAYERS, f"{module}: a package outside the layers (add it to LAYERS)"
        for target in _imports(module, path):
            other = _layer(target) if target.count(".") >= 1 else "__init__"
            if other == own:
                continue
            if other in FACADE or LAYERS.index(other) > LAYERS.index(own):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that run back up the layers: " + ", ".join(sorted(wrong))


def test_few_modules_at_the_top():
    top = sorted(p.stem for p in ROOT.glob("*.py"))
    assert len(top) <= 8, top
