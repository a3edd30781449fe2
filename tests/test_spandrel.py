"""`fbcnn export --format spandrel`: a safetensors file that spandrel (the model loader of
chaiNNer and ComfyUI) loads as FBCNN and that restores as fbcnn does.

spandrel imports torchvision at import time (two architectures, LaMa and RestoreFormer, take
a few names from it) but FBCNN never calls it. The test environment installs spandrel with
`--no-deps` (PyPI's torchvision is a CUDA build that fails to import beside the CPU torch),
so when torchvision is absent spandrel is imported here with a stand-in for those names,
removed again once spandrel is loaded.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fbcnn.frontends.cli import main
from fbcnn.networks.checkpoints import load_network, resolve_model, save_network
from fbcnn.networks.export import ExportError, export_model, export_spandrel, spandrel_network
from fbcnn.networks.network import FBCNN, FBCNNConfig, qf_to_network

TOL = 1e-5
SIZE = (40, 56)


@contextlib.contextmanager
def torchvision_stand_in() -> Iterator[None]:
    """`torchvision.transforms.functional` with the names spandrel imports, for the import
    only (nothing else in the test session sees it)."""
    if importlib.util.find_spec("torchvision") is not None:
        yield  # a real one: spandrel uses it
        return

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"

    def missing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torchvision is not installed")

    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = functional.normalize = missing  # type: ignore[attr-defined]
    root.__path__, transforms.__path__ = [], []  # packages
    root.transforms, transforms.functional = transforms, functional  # type: ignore[attr-defined]
    modules = {m.__name__: m for m in (root, transforms, functional)}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in modules:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def spandrel() -> types.ModuleType:
    try:
        with torchvision_stand_in():
            import spandrel
    except Exception as e:  # noqa: BLE001 - missing, or broken by its dependencies
        pytest.skip(f"spandrel not usable here: {type(e).__name__}: {e}")
    return spandrel


def image(channels: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, channels, *SIZE, generator=torch.Generator().manual_seed(seed))


def random_network(config: FBCNNConfig, seed: int = 0) -> FBCNN:
    torch.manual_seed(seed)
    net = FBCNN(config)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def tiny_config(channels: int, residual: bool) -> FBCNNConfig:
    # two blocks a stage: spandrel unwraps a stage of one block (other keys)
    return FBCNNConfig(in_channels=channels, out_channels=channels, widths=(8, 8, 16, 16),
                       blocks=2, qf_width=16, global_residual=residual)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a - b).abs().max())


def check_spandrel_matches(spandrel: types.ModuleType, path: Path, net: FBCNN) -> None:
    """spandrel loads `path` as FBCNN and restores `net`'s way: its own forward, the call
    chaiNNer and ComfyUI make (clamped), and with a QF given."""
    channels = net.config.in_channels
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    assert descriptor.architecture.id == "FBCNN"
    assert descriptor.architecture.name == "FBCNN"
    assert (descriptor.input_channels, descriptor.output_channels) == (channels, channels)
    assert descriptor.scale == 1
    x = image(channels)
    qf40 = torch.tensor([[qf_to_network(40.0)]])
    with torch.no_grad():
        ours, ours_qf = net(x)
        theirs, theirs_qf = descriptor.model(x)
        called = descriptor(x)
        with_qf = descriptor.model(x, qf40)[0]
        ours_with_qf = net(x, qf40)[0]
    assert max_diff(theirs, ours) <= TOL
    assert max_diff(theirs_qf, ours_qf) <= TOL
    assert max_diff(called, ours.clamp(0, 1)) <= TOL
    assert max_diff(with_qf, ours_with_qf) <= TOL
    if net.config.global_residual:  # the residual is really carried, not negligible
        assert max_diff(theirs - x, ours) > 100 * TOL


@pytest.mark.parametrize("name", ["color", "gray"])
def test_shipped_model_in_spandrel(spandrel, tmp_path, name):
    path = export_model(name, "spandrel", tmp_path)
    assert path == tmp_path / f"1x_fbcnn_{name}.safetensors"
    check_spandrel_matches(spandrel, path, load_network(resolve_model(name)).network)


@pytest.mark.parametrize("channels", [3, 1], ids=["colour", "grey"])
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
def test_random_model_in_spandrel(spandrel, tmp_path, channels, residual):
    net = random_network(tiny_config(channels, residual))
    checkpoint = tmp_path / "tiny.safetensors"
    save_network(net, checkpoint)
    path = export_spandrel(net, tmp_path / "tiny_spandrel.safetensors")
    check_spandrel_matches(spandrel, path, load_network(checkpoint).network)


def test_widened_file_loads_in_fbcnn_too(tmp_path):
    """The file is a plain FBCNN in spandrel's layout: fbcnn reads it, same output."""
    net = random_network(tiny_config(3, residual=True))
    path = export_spandrel(net, tmp_path / "wide.safetensors")
    wide = load_network(path).network
    c0 = net.config.widths[0]
    assert wide.config == FBCNNConfig(widths=(c0 + 3, 8, 16, 512), blocks=2, qf_width=512)
    x = image(3, seed=1)
    with torch.no_grad():
        assert max_diff(wide(x)[0], net(x)[0]) <= TOL
    assert max_diff(wide(x)[1].detach(), net(x)[1].detach()) <= TOL
    # the conversion leaves the caller's network alone
    assert spandrel_network(net) is not net and net.config.widths == (8, 8, 16, 16)


def test_cli_writes_named_file_into_folder(tmp_path):
    result = CliRunner().invoke(main, ["export", "--model", "color", "--format", "spandrel",
                                       "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "1x_fbcnn_color.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temp files left
    assert "wrote" in result.output and out.name in result.output
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as any file the user makes
    wide = load_network(out).network
    assert wide.config.widths[3] == 512 and wide.config.qf_width == 512
    # -o naming a file: that name
    named = tmp_path / "sub" / "mine.safetensors"
    named.parent.mkdir()
    result = CliRunner().invoke(main, ["export", "--model", "gray", "--format", "spandrel",
                                       "-o", str(named)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in named.parent.iterdir()) == [named.name]


@pytest.mark.parametrize("config, message", [
    (FBCNNConfig(widths=(8, 8, 16, 16), blocks=1, qf_width=16), "1 block a stage"),
    (FBCNNConfig(widths=(8, 8, 16, 1024), blocks=2, qf_width=16), "last width 1024"),
    (FBCNNConfig(widths=(8, 8, 16, 16), blocks=2, qf_width=1024), "QF branch width 1024"),
], ids=["one-block", "wide-last", "wide-qf"])
def test_refuses_what_spandrel_cannot_represent(tmp_path, config, message):
    target = tmp_path / "x.safetensors"
    with torch.device("meta"):  # no weights needed: refused from the config
        net = FBCNN(config)
    with pytest.raises(ExportError, match=message) as info:
        export_spandrel(net, target)
    assert "spandrel cannot represent" in str(info.value)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--qf-input"], "--qf-input"),
    (["--opset", "17"], "--opset"),
    (["-o", "{tmp}/x.pth"], ".safetensors"),
], ids=["qf-input", "opset", "suffix"])
def test_cli_bad_spandrel_options(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path)]
    result = CliRunner().invoke(main, ["export", "--model", "color", "--format", "spandrel",
                                       *args])
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
