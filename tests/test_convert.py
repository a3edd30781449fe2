"""A grey network converted from a colour one computes the luma of the colour output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from test_train import TINY, tiny_config

from fbcnn.networks.checkpoints import PROVENANCE_KEY, file_sha256, load_network, save_network
from fbcnn.networks.network import FBCNN
from fbcnn.train import Trainer
from fbcnn.train.convert import LUMA, grey_from_colour


def random_colour(global_residual: bool) -> FBCNN:
    torch.manual_seed(0)
    net = FBCNN(dataclasses.replace(TINY, global_residual=global_residual))
    with torch.no_grad():
        for p in net.parameters():  # biases too, so the tail's bias mix is checked
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


@pytest.mark.parametrize("global_residual", [True, False])
def test_grey_copy_is_the_luma_of_the_colour_output(global_residual: bool) -> None:
    colour = random_colour(global_residual)
    grey = grey_from_colour(colour)
    assert grey.config.in_channels == grey.config.out_channels == 1
    x = torch.rand(2, 1, 24, 40)
    luma = torch.tensor(LUMA).view(1, 3, 1, 1)
    with torch.no_grad():
        for override in (None, 0.3):
            out_c, qf_c = colour(x.expand(-1, 3, -1, -1), qf_override=override)
            out_g, qf_g = grey(x, qf_override=override)
            assert torch.allclose(out_g, (out_c * luma).sum(1, keepdim=True), atol=1e-5)
            assert torch.allclose(qf_g, qf_c, atol=1e-6)
    with pytest.raises(ValueError, match="colour network"):
        grey_from_colour(grey)


def test_a_grey_stage_starts_from_a_colour_parent(tmp_path: Path) -> None:
    parent = tmp_path / "colour.safetensors"
    colour = random_colour(True)
    save_network(colour, parent, {PROVENANCE_KEY: json.dumps([{"name": "colour",
                                                                "train_seconds": 5.0}])})
    config = tiny_config(tmp_path)
    config.model = dataclasses.replace(TINY, in_channels=1, out_channels=1)
    config.data.gray = True
    config.init_from, config.init_sha256 = str(parent), file_sha256(parent)
    trainer = Trainer(config, iterations=1, quiet=True)
    expected = grey_from_colour(colour).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in trainer.network.state_dict().items())
    trainer.train()
    records = [json.loads(line) for line in
               (Path(config.output) / "log.jsonl").read_text().splitlines()]
    first = next(r for r in records if "val" in r)
    assert first["iteration"] == 0 and first["patches"] == 0  # the parent, before a step
    stages = json.loads(load_network(Path(config.output) / "model.safetensors")
                        .metadata[PROVENANCE_KEY])
    assert [s["name"] for s in stages] == ["colour", "tiny"]

    grey_parent = tmp_path / "grey.safetensors"
    save_network(grey_from_colour(colour), grey_parent)
    back = tiny_config(tmp_path, "back")
    back.init_from = str(grey_parent)
    with pytest.raises(ValueError, match="cannot start a colour model"):
        Trainer(back, iterations=1, quiet=True)
