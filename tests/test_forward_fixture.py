"""The forward pass against a stored fixture (tests/data/forward_fixture.npz, written by
scripts/make_forward_fixture.py): the published layout and the shipped models' layout with
seeded weights reproduce the stored outputs within 1e-5.

spandrel (the reference forward of chaiNNer / ComfyUI, tests/test_export.py) is not
installed here; this is the parity check that always runs. It fails on a silent change of
the forward pass: layer order, the QF attention (gamma, beta, its residual), a residual or
skip connection, the decoupler, the padding or the crop. An intended change regenerates
the fixture with the script, in the same commit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import make_forward_fixture as fixture  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "forward_fixture.npz"
TOL = 1e-5


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


def test_fixture_is_small_and_its_input_is_the_seeded_one(stored) -> None:
    assert FIXTURE.stat().st_size < 200 * 1024
    assert np.array_equal(stored["input"], fixture.seeded_input().numpy())


@pytest.mark.parametrize("layout", list(fixture.LAYOUTS))
def test_forward_reproduces_the_stored_outputs(stored, layout: str) -> None:
    network = fixture.seeded_network(fixture.LAYOUTS[layout])
    ours = fixture.forward_outputs(network, torch.from_numpy(stored["input"]))
    for key, value in ours.items():
        expected = stored[f"{layout}/{key}"]
        assert value.shape == expected.shape, key
        assert float(np.abs(value - expected).max()) <= TOL, (layout, key)
    # the QF fed reaches the output: the fixture would not see a decoder ignoring it
    assert np.abs(stored[f"{layout}/restored"] - stored[f"{layout}/restored_qf40"]).max() > 1e-3


def test_seeded_weights_depend_on_the_key_only() -> None:
    """Same name and seed, same tensor (the fixture's premise); another name, another one."""
    shape = torch.Size((4, 3, 3, 3))
    a = fixture.seeded_weights("m_head.weight", shape)
    assert torch.equal(a, fixture.seeded_weights("m_head.weight", shape))
    assert not torch.equal(a, fixture.seeded_weights("m_tail.weight", shape))
