"""The inference engine: tiles on the grid, one global QF, seamless blending, the API."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_photo, tiny_network
from PIL import Image

from fbcnn.engine.model import Model
from fbcnn.engine.restorer import RAMP_EDGE, Restorer, _ramp, tile_spans, tile_starts
from fbcnn.jpeg.qf import QF_TILE, qf_tile_boxes
from fbcnn.jpeg.tables import compress


@pytest.mark.parametrize("length,tile,overlap,grid", [(1000, 256, 32, 16), (517, 128, 16, 8),
                                                      (300, 300, 32, 8), (257, 256, 32, 16)])
def test_tile_starts_cover_on_grid_with_overlap(length, tile, overlap, grid) -> None:
    starts = tile_starts(length, tile, overlap, grid)
    assert starts[0] == 0 and all(s % grid == 0 for s in starts)
    assert min(starts[-1] + tile, length) == length  # reaches the end
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + tile - b >= overlap  # neighbours overlap


@pytest.mark.parametrize("length,tile,overlap,grid", [
    (2048, 512, 32, 16), (1536, 512, 32, 16), (6000, 512, 32, 8), (513, 512, 32, 16),
    (700, 64, 32, 16), (1000, 256, 0, 8)])
def test_tile_spans_are_few_balanced_and_on_grid(length, tile, overlap, grid) -> None:
    spans = tile_spans(length, tile, overlap, grid)
    sizes = [e - s for s, e in spans]
    assert spans[0][0] == 0 and spans[-1][1] == length and max(sizes) <= tile
    for (a, b), (c, _) in zip(spans, spans[1:], strict=False):
        assert c % grid == 0 and b - c == overlap and c > a  # on the grid, overlapping
    assert max(sizes) - min(sizes) <= 2 * grid  # balanced: no sliver at the end
    # as few as possible: one tile less could not cover the length
    assert (len(spans) - 1) * (tile - overlap) + overlap < length


@pytest.mark.parametrize("tile,grid", [(640, 16), (512, 8), (128, 16)])
def test_the_first_tile_span_is_the_longest(tile, grid) -> None:
    """So the first tile a runtime sees is the largest (OpenVINO sizes its buffers on it);
    with the nearest-grid rounding alone, 1536 on a 16 grid gave 528, 544, 528."""
    for length in range(tile + 1, 12 * tile, 7):
        sizes = [e - s for s, e in tile_spans(length, tile, 32, grid)]
        assert sizes[0] == max(sizes), (length, sizes)


def test_tiled_qf_reading_does_not_depend_on_the_tile_size() -> None:
    image = compress(make_photo(300, 420), 30)
    net = tiny_network()
    readings = {t: Restorer.of(net, device="cpu", tile=t).predict_qf(image, 16)
                for t in (64, 96, 256)}
    assert len(set(readings.values())) == 1  # the QF tiles have a size of their own
    out = Restorer.of(net, device="cpu", tile=96).restore(image, grid=16)
    assert out.predicted_qf == out.used_qf == readings[96]
    # a few QF tiles of their own size, about 4% of a big image, on the grid
    boxes = qf_tile_boxes(3000, 4000, 16)
    assert 2 <= len(boxes) <= 16 and all(y % 16 == 0 and x % 16 == 0 for y, x, _, _ in boxes)
    assert sum(h * w for _, _, h, w in boxes) <= 0.06 * 3000 * 4000
    assert all((h, w) == (QF_TILE, QF_TILE) for _, _, h, w in boxes)
    assert qf_tile_boxes(200, 100, 8) == [(0, 0, 200, 100)]  # small: the whole image


def test_qf_read_at_the_training_patch_size_over_windows() -> None:
    import torch

    from fbcnn.networks.network import network_to_qf

    image = compress(make_photo(300, 420), 30)
    net = tiny_network()
    restorers = {t: Restorer.of(net, device="cpu", tile=t, qf_tile=64) for t in (0, 96, 512)}
    readings = {t: r.predict_qf(image, 16) for t, r in restorers.items()}
    assert len(set(readings.values())) == 1  # one pass or tiles: the same windows
    boxes = restorers[0].qf_boxes(300, 420, 16)
    assert 8 <= len(boxes) <= 64 and all((h, w) == (64, 64) for _, _, h, w in boxes)
    assert all(y % 16 == 0 and x % 16 == 0 for y, x, _, _ in boxes)
    with torch.no_grad():  # the mean of the decoupler over those windows, one at a time
        values = [float(net.predict_qf(torch.from_numpy(image[y:y + h, x:x + w].copy())
                                       .permute(2, 0, 1)[None].float() / 255))
                  for y, x, h, w in boxes]
    assert readings[0] == pytest.approx(float(network_to_qf(np.mean(values))), abs=1e-3)
    # ... which is not what the whole image reads, and what the restore feeds
    assert readings[0] != pytest.approx(Restorer.of(net, device="cpu", tile=0).predict_qf(image))
    for tile, restorer in restorers.items():
        out = restorer.restore(image, grid=16)
        assert out.predicted_qf == out.used_qf == readings[tile]
    with pytest.raises(ValueError, match="qf_tile"):
        Restorer.of(net, device="cpu", qf_tile=4)


def test_tile_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 64"):
        Restorer.of(tiny_network(), device="cpu", tile=16)


def test_bf16_and_fp32_agree_within_one_grey_level() -> None:
    from fbcnn import load_model

    image = compress(make_photo(64, 96, seed=2), 20)
    fp32 = load_model("color", device="cpu", precision="fp32").restore(image)
    bf16 = load_model("color", device="cpu", precision="bf16")
    assert bf16.info.precision == "bf16"
    out = bf16.restore(image)
    assert np.abs(out.image.astype(int) - fp32.image.astype(int)).max() <= 1
    assert abs(out.predicted_qf - fp32.predicted_qf) < 1.0
    with pytest.raises(ValueError, match="precision"):
        load_model("color", device="cpu", precision="fp8")


@pytest.mark.parametrize("length,tile,overlap,grid", [(2048, 512, 32, 16), (1536, 512, 32, 16),
                                                      (300, 64, 28, 8), (517, 128, 16, 8)])
def test_ramps_add_up_to_one_and_skip_the_tile_edges(length, tile, overlap, grid) -> None:
    """Blended along a row of tiles at least twice the overlap long, the weights sum to 1
    everywhere (shorter tiles ramp over half their length: the blend divides by the sum,
    which is never 0); inside an overlap each tile's outer RAMP_EDGE pixels (at most a
    quarter of it) weigh nothing."""
    spans = tile_spans(length, tile, overlap, grid)
    total = np.zeros(length, np.float32)
    for a, b in spans:
        w = _ramp(b - a, overlap, a == 0, b >= length)
        total[a:b] += w
        edge = min(RAMP_EDGE, min(overlap, (b - a) // 2) // 4)
        if a > 0:
            assert not w[:edge].any() and w[edge] > 0
        if b < length:
            assert not w[b - a - edge:].any() and w[b - a - edge - 1] > 0
    if min(b - a for a, b in spans) >= 2 * overlap:
        assert np.allclose(total, 1, atol=1e-6)
    else:
        assert total.min() > 0.5
    assert np.array_equal(_ramp(40, 28, True, True), np.ones(40, np.float32))


def test_tiled_and_untiled_agree_within_one_level() -> None:
    image = compress(make_photo(200, 264), 20)
    net = tiny_network()
    calls: list = []
    whole = Restorer.of(net, device="cpu", tile=0).restore(image, qf=20, grid=16)
    tiler = Restorer.of(net, device="cpu", tile=96, overlap=32)
    tiled = tiler.restore(image, qf=20, grid=16, progress=lambda d, t: calls.append((d, t)))
    diff = np.abs(whole.pixels.astype(int) - tiled.pixels.astype(int))
    assert diff.max() <= 1
    n = tiler.tile_count(200, 264, 16)
    assert n > 4 and calls == [(i, n) for i in range(1, n + 1)]  # one call a tile
    assert not np.array_equal(whole.pixels, image)  # the network did something


def test_tiled_uses_one_global_qf() -> None:
    image = compress(make_photo(160, 160), 30)
    restorer = Restorer.of(tiny_network(), device="cpu", tile=64, overlap=16)
    out = restorer.restore(image, grid=16)
    assert out.used_qf == out.predicted_qf == pytest.approx(restorer.predict_qf(image, 16))


def test_qf_override_is_used_and_validated() -> None:
    restorer = Restorer.of(tiny_network(), device="cpu")
    image = compress(make_photo(), 10)
    assert restorer.restore(image, qf=42).used_qf == 42
    with pytest.raises(ValueError, match="1..100"):
        restorer.restore(image, qf=0)
    with pytest.raises(ValueError, match="3-channel"):
        restorer.restore(image[:, :, :1])


def test_model_api_numpy_and_pil_keep_type_size_and_alpha() -> None:
    model = Model(tiny_network(), name="tiny", device="cpu")
    image = compress(make_photo(40, 56), 10)
    result = model.restore(image)
    assert isinstance(result.image, np.ndarray) and result.image.shape == image.shape
    assert result.image.dtype == np.uint8 and 0 < result.predicted_qf < 100
    rgba = Image.fromarray(image).convert("RGBA")
    rgba.putalpha(77)
    out = model.restore(rgba, qf=50)
    assert isinstance(out.image, Image.Image) and out.image.size == rgba.size
    assert out.image.mode == "RGBA" and np.all(np.asarray(out.image)[..., 3] == 77)
    assert out.used_qf == 50


def test_grey_image_on_colour_model_stays_grey() -> None:
    model = Model(tiny_network(3), name="tiny", device="cpu")
    grey = compress(make_photo(32, 32, channels=1), 20)
    out = model.restore(grey[:, :, 0])
    assert out.image.shape == (32, 32)
    with pytest.raises(ValueError, match="colour model"):
        Model(tiny_network(1), name="g", device="cpu").restore(compress(make_photo(32, 32), 20))


def test_is_neutral_reads_every_row() -> None:
    from fbcnn.jpeg.color import is_neutral

    grey = np.repeat(make_photo(40, 32, channels=1), 3, axis=2)
    assert is_neutral(grey) and not is_neutral(grey[:, :, :1]) and not is_neutral(grey[0])
    grey[5, 7, 2] += 1  # a row the first look (every 17th) skips
    assert not is_neutral(grey)
    assert not is_neutral(make_photo(40, 32))


def test_a_grey_image_stored_in_colour_comes_back_grey() -> None:
    """Was: a black-and-white photo saved as a colour JPEG came back with faint colour (the
    colour model's channels differ by up to 10 levels on a Kodak photo at QF 20). On the
    colour model its result is the mean of the network's channels; on a grey model, its one
    channel restored as a grey image is, in all three, the same pixels."""
    grey = compress(make_photo(48, 64, channels=1), 20)
    neutral = np.repeat(grey, 3, axis=2)
    colour = Model(tiny_network(3), name="c", device="cpu")
    raw = colour.restorer.restore(neutral).pixels
    assert np.abs(raw[..., :1].astype(int) - raw).max() > 0  # the network alone tints it
    out = colour.restore_array(neutral).image
    assert out.shape == neutral.shape and (out == out[..., :1]).all()
    want = np.round(raw.mean(axis=2, dtype=np.float32)).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], want)
    grey_model = Model(tiny_network(1), name="g", device="cpu")
    out = grey_model.restore_array(neutral, qf=30).image
    assert out.shape == neutral.shape and (out == out[..., :1]).all()
    np.testing.assert_array_equal(out[..., 0], grey_model.restore_array(grey, qf=30).image[..., 0])
    assert grey_model.predict_qf(neutral) == grey_model.predict_qf(grey)


def test_api_refuses_modes_it_cannot_read() -> None:
    model = Model(tiny_network(), name="tiny", device="cpu")
    floats = Image.fromarray(make_photo(16, 16, channels=1)[:, :, 0]).convert("F")
    with pytest.raises(ValueError, match="mode F"):
        model.restore(floats)
    palette = Image.fromarray(make_photo(16, 16)).convert("P")  # read as a GIF is
    assert model.restore(palette).image.mode == "RGB"
    cmyk = Image.fromarray(make_photo(16, 16)).convert("CMYK")  # converted, as a CMYK file
    assert model.restore(cmyk).image.mode == "RGB"
