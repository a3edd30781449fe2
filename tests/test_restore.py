"""The inference engine: tiles on the grid, one global QF, seamless blending, the API."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_photo, tiny_network
from PIL import Image

from fbcnn.jpeg import compress
from fbcnn.model import Model
from fbcnn.restore import Restorer, tile_starts


@pytest.mark.parametrize("length,tile,overlap,grid", [(1000, 256, 32, 16), (517, 128, 16, 8),
                                                      (300, 300, 32, 8), (257, 256, 32, 16)])
def test_tile_starts_cover_on_grid_with_overlap(length, tile, overlap, grid) -> None:
    starts = tile_starts(length, tile, overlap, grid)
    assert starts[0] == 0 and all(s % grid == 0 for s in starts)
    assert min(starts[-1] + tile, length) == length  # reaches the end
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + tile - b >= overlap  # neighbours overlap


def test_tiled_and_untiled_agree_within_one_level() -> None:
    image = compress(make_photo(200, 264), 20)
    net = tiny_network()
    whole = Restorer(net, device="cpu", tile=0).restore(image, qf=20, grid=16)
    tiled = Restorer(net, device="cpu", tile=96, overlap=32).restore(image, qf=20, grid=16)
    diff = np.abs(whole.pixels.astype(int) - tiled.pixels.astype(int))
    assert diff.max() <= 1
    assert not np.array_equal(whole.pixels, image)  # the network did something


def test_tiled_uses_one_global_qf() -> None:
    image = compress(make_photo(160, 160), 30)
    restorer = Restorer(tiny_network(), device="cpu", tile=64, overlap=16)
    out = restorer.restore(image, grid=16)
    assert out.used_qf == out.predicted_qf == pytest.approx(restorer.predict_qf(image, 16))


def test_qf_override_is_used_and_validated() -> None:
    restorer = Restorer(tiny_network(), device="cpu")
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
