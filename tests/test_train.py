"""The trainer: exact resume, checkpoints, validation log, config errors, DDP with 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_photo
from PIL import Image

from fbcnn.checkpoints import load_network
from fbcnn.network import FBCNNConfig
from fbcnn.train import Trainer, load_config
from fbcnn.train.config import DataConfig, OptimConfig, TrainConfig, ValidationConfig

TINY = FBCNNConfig(widths=(8, 8, 16, 16), blocks=1, qf_width=16, global_residual=True)


def tiny_config(tmp_path: Path, out: str = "run") -> TrainConfig:
    data = tmp_path / "data"
    if not data.exists():
        data.mkdir()
        for i in range(3):
            Image.fromarray(make_photo(48, 56, seed=i)).save(data / f"{i}.png")
    return TrainConfig(
        name="tiny", model=TINY, output=str(tmp_path / out), threads=1,
        data=DataConfig(folders=[str(data)], patch_size=16, batch_size=2,
                        double_probability=0.5),
        validation=ValidationConfig(folder=str(data), limit=1, crop=32, every=3, qfs=[10, 40]),
        optim=OptimConfig(iterations=50, warmup=2, ema_decay=0.9),
    )


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = Trainer(tiny_config(tmp_path, "a"), iterations=6, quiet=True)
    straight.train()
    first = Trainer(tiny_config(tmp_path, "b"), iterations=3, quiet=True)
    first.train()
    resumed = Trainer(tiny_config(tmp_path, "b"), resume=True, iterations=3, quiet=True)
    assert resumed.iteration == 3
    resumed.train()
    assert resumed.iteration == straight.iteration == 6
    for k, v in straight.network.state_dict().items():
        assert torch.equal(v, resumed.network.state_dict()[k]), k
    for k, v in straight.ema.shadow.items():
        assert torch.equal(v, resumed.ema.shadow[k]), k


def test_run_writes_log_checkpoint_and_weights(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    Trainer(config, iterations=6, quiet=True).train()
    out = Path(config.output)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    val = [r for r in records if "val" in r]
    assert [r["iteration"] for r in val] == [3, 6]
    assert set(val[0]["val"]) == {"10", "40"}
    assert {"jpeg", "restored", "predicted_qf"} <= set(val[0]["val"]["10"])
    assert all(r["patches_per_s"] > 0 for r in records)
    loaded = load_network(out / "model.safetensors")
    assert loaded.network.config == TINY and loaded.metadata["iterations"] == "6"
    assert (out / "best.safetensors").is_file() and (out / "last.pt").is_file()


def test_config_file_round_trip_and_typos(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nmodel: {widths: [8, 8, 16, 16], blocks: 1}\n"
                    "data: {patch_size: 32}\noptim: {lr: 0.001}\n")
    config = load_config(path)
    assert config.model.widths == (8, 8, 16, 16) and config.data.patch_size == 32
    assert config.optim.lr == 0.001 and config.data.batch_size == DataConfig().batch_size
    path.write_text("optim: {learning_rate: 0.1}\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(path)


@pytest.mark.parametrize("name", ["color", "gray", "color-double", "gray-double"])
def test_shipped_configs_parse(name: str) -> None:
    config = load_config(Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    assert config.name == name
    assert config.data.gray == name.startswith("gray")
    assert (config.data.double_probability > 0) == name.endswith("double")


def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    config.validation.limit = 0
    cfg_path = tmp_path / "ddp.yaml"
    d = config.to_dict()
    import yaml

    cfg_path.write_text(yaml.safe_dump(d))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "fbcnn", "train", "--config", str(cfg_path),
           "--iterations", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    state = torch.load(Path(config.output) / "last.pt", weights_only=True)
    assert state["iteration"] == 2
    assert len(json.loads(state["rng_numpy"])) == 2  # both ranks' sampler states


def test_teacher_forcing_and_revived_qf_attention(tmp_path: Path) -> None:
    from fbcnn.checkpoints import save_network
    from fbcnn.train.loop import revive_qf_attention

    first = tiny_config(tmp_path, "first")
    Trainer(first, iterations=2, quiet=True).train()
    config = tiny_config(tmp_path, "second")
    config.init_from = str(Path(first.output) / "model.safetensors")
    config.revive_qf_attention = True
    config.optim.qf_teacher_forcing = 0.5
    trainer = Trainer(config, iterations=3, quiet=True)
    assert torch.count_nonzero(trainer.network.to_gamma_1[0].weight) == 0
    trainer.train()
    # after a few steps the QF fed to the decoder changes the output again
    net = trainer.network.eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        a, _ = net(x, 0.9)
        b, _ = net(x, 0.1)
    assert not torch.equal(a, b)
    revive_qf_attention(net)
    save_network(net, tmp_path / "revived.safetensors")
