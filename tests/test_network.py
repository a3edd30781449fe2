"""The network against the published layout (written from the reference, not from our code)."""

from __future__ import annotations

import pytest
import torch

from fbcnn.networks.checkpoints import (
    CheckpointError,
    config_from_state_dict,
    load_network,
    network_from_state_dict,
    save_network,
)
from fbcnn.networks.network import FBCNN, FBCNNConfig, network_to_qf, qf_to_network

NC = (64, 128, 256, 512)
NB = 4


def published_keys(channels: int) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of fbcnn_color.pth / fbcnn_gray.pth, from the reference's table."""
    keys: dict[str, tuple[int, ...]] = {}

    def conv(prefix: str, c_out: int, c_in: int, k: int) -> None:
        keys[f"{prefix}.weight"] = (c_out, c_in, k, k)
        keys[f"{prefix}.bias"] = (c_out,)

    def tconv(prefix: str, c_in: int, c_out: int) -> None:  # ConvTranspose2d: (in, out, k, k)
        keys[f"{prefix}.weight"] = (c_in, c_out, 2, 2)
        keys[f"{prefix}.bias"] = (c_out,)

    def linear(prefix: str, c_out: int, c_in: int) -> None:
        keys[f"{prefix}.weight"] = (c_out, c_in)
        keys[f"{prefix}.bias"] = (c_out,)

    def resblocks(prefix: str, c: int, first: int = 0) -> None:
        for i in range(first, first + NB):
            conv(f"{prefix}.{i}.res.0", c, c, 3)
            conv(f"{prefix}.{i}.res.2", c, c, 3)

    conv("m_head", NC[0], channels, 3)
    for stage, (c_in, c_out) in enumerate(zip(NC[:3], NC[1:], strict=False), start=1):
        resblocks(f"m_down{stage}", c_in)
        conv(f"m_down{stage}.{NB}", c_out, c_in, 2)
    resblocks("m_body_encoder", 512)
    resblocks("qf_pred", 512)
    linear(f"qf_pred.{NB + 2}", 512, 512)
    linear(f"qf_pred.{NB + 4}", 512, 512)
    linear(f"qf_pred.{NB + 6}", 1, 512)
    resblocks("m_body_decoder", 512)
    linear("qf_embed.0", 512, 1)
    linear("qf_embed.2", 512, 512)
    linear("qf_embed.4", 512, 512)
    for k in (3, 2, 1):
        linear(f"to_gamma_{k}.0", NC[k - 1], 512)
        linear(f"to_beta_{k}.0", NC[k - 1], 512)
        tconv(f"m_up{k}.0", NC[k], NC[k - 1])
        resblocks(f"m_up{k}", NC[k - 1], first=1)
    conv("m_tail", channels, NC[0], 3)
    return keys


@pytest.mark.parametrize("channels", [3, 1])
def test_published_layout_keys_and_shapes(channels: int) -> None:
    net = FBCNN(FBCNNConfig(in_channels=channels, out_channels=channels))
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == published_keys(channels)
    params = sum(p.numel() for p in net.parameters())
    assert 71.0e6 < params < 72.9e6  # "about 71.9 M parameters"


def test_published_state_dict_loads_strict_and_config_is_read(tmp_path) -> None:
    state = {k: torch.randn(shape) * 0.01 for k, shape in published_keys(1).items()}
    path = tmp_path / "fbcnn_gray.pth"
    torch.save(state, path)  # a plain state dict, like the release
    loaded = load_network(path)
    assert loaded.network.config == FBCNNConfig(in_channels=1, out_channels=1)
    for k, v in loaded.network.state_dict().items():
        assert torch.equal(v, state[k])


def test_published_size_save_and_reload_safetensors(tmp_path) -> None:
    net = FBCNN()
    path = tmp_path / "published.safetensors"
    save_network(net, path)
    again = load_network(path).network
    assert again.config == net.config
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        a, qa = net.eval()(x)
        b, qb = again(x)
    assert torch.equal(a, b) and torch.equal(qa, qb)


def small(**kw) -> FBCNN:
    return FBCNN(FBCNNConfig(widths=(8, 16, 16, 32), blocks=1, qf_width=16, **kw)).eval()


@pytest.mark.parametrize("h,w", [(8, 8), (37, 45), (64, 17)])
def test_any_size_in_same_size_out(h: int, w: int) -> None:
    out, qf = small()(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, h, w) and qf.shape == (2, 1)
    assert ((qf > 0) & (qf < 1)).all()


def test_qf_override_changes_output_and_prediction_does_not() -> None:
    net = small()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a, qa = net(x, qf_override=torch.tensor([[0.9]]))
        b, qb = net(x, qf_override=0.1)
    assert torch.equal(qa, qb)
    assert not torch.allclose(a, b)


def test_one_image_folds_the_qf_attention_into_the_convolution_exactly() -> None:
    """A batch of one takes the folded QF attention (gamma and beta inside the second
    convolution); a batch with two QFs cannot: both give the same image (fails if the fold
    drops beta, scales the bias wrongly or misses the residual)."""
    net = small().eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        alone, _ = net(x, qf_override=torch.tensor([[0.6]]))
        pair, _ = net(torch.cat([x, x]), qf_override=torch.tensor([[0.6], [0.1]]))
    scale = pair.abs().max()  # random weights: large values, compared relatively
    assert (pair[0] - pair[1]).abs().max() > 1e-2 * scale  # gamma and beta matter here
    assert (alone[0] - pair[0]).abs().max() <= 1e-5 * scale


def test_reconstruct_is_forward_with_the_qf_fed_without_the_decoupler() -> None:
    net = small().eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    calls: list[int] = []
    net.qf_pred.register_forward_hook(lambda *_: calls.append(1))
    for n in (1, 2):
        x = torch.rand(n, 3, 20, 36)
        with torch.no_grad():
            full, _ = net(x, qf_override=torch.full((n, 1), 0.35))
            calls.clear()
            alone = net.reconstruct(x, 0.35)
        assert not calls  # the decoupler did not run
        assert alone.shape == full.shape
        assert (alone - full).abs().max() <= 1e-5 * full.abs().max()


def test_global_residual_config_survives_save(tmp_path) -> None:
    net = small(global_residual=True)
    save_network(net, tmp_path / "m.safetensors")
    assert load_network(tmp_path / "m.safetensors").network.config.global_residual


def test_config_inferred_from_small_state_dict() -> None:
    cfg = config_from_state_dict(small().state_dict())
    assert cfg.widths == (8, 16, 16, 32) and cfg.blocks == 1 and cfg.qf_width == 16


def test_qf_convention_round_trip() -> None:
    assert qf_to_network(30.0) == pytest.approx(0.7)
    assert float(network_to_qf(torch.tensor(0.7))) == pytest.approx(30.0)


def test_bad_checkpoints_give_clear_errors(tmp_path) -> None:
    text = tmp_path / "x.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint we can read safely") as e:
        load_network(text)
    assert "weights_only" not in str(e.value)  # torch's advice to run the pickle: never ours
    with pytest.raises(CheckpointError, match="no such"):
        load_network(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="not an FBCNN"):
        network_from_state_dict({"foo.weight": torch.zeros(1)})


def test_pickled_code_is_never_executed(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"import pathlib; pathlib.Path({str(marker)!r}).touch()",))

    path = tmp_path / "evil.pth"
    torch.save({"m_head.weight": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_network(path)
    assert not marker.exists()
