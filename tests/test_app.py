"""The web app's handlers (`fbcnn serve`), called directly with tiny models: what the page
shows, and that its download is `fbcnn restore`'s PNG for the same file and QF."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import huge_png, make_photo, tiny_network
from PIL import Image

from fbcnn.engine.pipeline import ModelSet
from fbcnn.frontends.cli import main
from fbcnn.jpeg.tables import compress
from fbcnn.networks.checkpoints import save_network

gr = pytest.importorskip("gradio", reason="the web app needs gradio: pip install -e '.[app]'")
app = pytest.importorskip("fbcnn.frontends.app")

INFO, STRENGTH, AUTO, COMPARE, DOWNLOAD, STATUS, IMAGE = range(7)


def slider_at(qf: float) -> dict:
    """The strength slider's update showing `qf`, movable."""
    return {"__type__": "update", "value": round(qf), "interactive": True,
            "info": app.STRENGTH_INFO}


# auto, no prediction to show: greyed out, saying so
GREYED = {"__type__": "update", "interactive": False, "info": app.WAITING_INFO}


@pytest.fixture
def handlers(tiny_named_models, tmp_path):
    return app.Handlers(ModelSet(), workdir=tmp_path / "work")


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    out = {"color": folder / "photo.jpg", "gray": folder / "grey.jpg",
           "double": folder / "double.jpg", "png": folder / "plain.png"}
    Image.fromarray(make_photo(96, 128)).save(out["color"], quality=20)
    Image.fromarray(make_photo(64, 80, channels=1)[:, :, 0]).save(out["gray"], quality=35)
    # QF 10, shifted by (3, 5), then saved at QF 60: a non-aligned double JPEG
    # (large enough for the analysis to judge: 96x128 at least)
    first = np.ascontiguousarray(compress(make_photo(104, 136, seed=3), 10)[3:, 5:])
    Image.fromarray(first).save(out["double"], quality=60)
    Image.fromarray(make_photo(40, 48)).save(out["png"])
    return out


def cli_restore(path: Path, outdir: Path, *args: str) -> np.ndarray:
    result = CliRunner().invoke(main, ["restore", str(path), "-o", str(outdir), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Image.open(outdir / f"{path.stem}.png") as im:
        return np.asarray(im)


_open_events: list = []


@pytest.fixture(autouse=True)
def _close_events():
    yield
    _open_events.clear()


def last(events):
    """What the page shows at the end of an event (handlers yield the analysis first, then
    the result). Stops there and keeps the handler open, as Gradio does until it has copied
    the result into its cache: asked for more, or closed, the handler removes its own copy."""
    _open_events.append(events)
    *_, final = itertools.islice(events, 2)
    return final


def pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_upload_shows_predicted_and_header_qf_and_restores(handlers, files) -> None:
    events = handlers.on_upload(str(files["color"]), "auto", "")
    first, out = itertools.islice(events, 2)
    info = handlers.analyse(files["color"])
    # the analysis shows before the restore (which may take minutes on a big image)
    assert first[INFO] == out[INFO] and first[STRENGTH] == slider_at(info.predicted_qf)
    assert first[STATUS] == f"Restoring with QF {info.predicted_qf:.1f}..."
    assert first[COMPARE] == first[DOWNLOAD] == gr.skip()
    assert info.header_qf == 20 and info.model == "color" and info.double["detected"] is False
    assert f"| Predicted QF | **{info.predicted_qf:.1f}** |" in out[INFO]
    assert "| QF in the file | 20 |" in out[INFO]
    assert "| Double JPEG | no (confidence" in out[INFO]
    assert out[STRENGTH] == slider_at(info.predicted_qf) and out[AUTO] is True
    before, after = out[COMPARE]
    assert Path(before) == files["color"]  # the original file, not a re-encoded copy
    assert out[DOWNLOAD]["value"] == after and out[DOWNLOAD]["interactive"] is True
    assert Path(after).suffix == ".png" and pixels(after).shape == (96, 128, 3)
    assert "(auto)" in out[STATUS] and "`fbcnn restore photo.jpg`" in out[STATUS]
    # once Gradio has taken the result (asks for the next value), the app's copy is gone
    assert list(events) == [] and not Path(after).exists()
    assert not any(handlers.workdir.iterdir())


@pytest.mark.parametrize("qf", [7, 37.5, 90])
def test_download_is_cli_restore_at_same_qf(handlers, files, tmp_path, qf) -> None:
    out = last(handlers.on_strength(str(files["color"]), qf, "auto", ""))
    assert out[AUTO] is False and out[STRENGTH] == slider_at(qf)
    assert f"fbcnn restore --qf {qf:g} photo.jpg" in out[STATUS]
    png = Path(out[DOWNLOAD]["value"])
    assert png.name == f"photo_restored_qf{qf:g}.png"
    expected = cli_restore(files["color"], tmp_path / "cli", "--qf", str(qf))
    assert np.array_equal(pixels(png), expected)


def test_auto_is_cli_restore_default(handlers, files, tmp_path) -> None:
    out = last(handlers.on_upload(str(files["color"]), "auto", ""))
    assert np.array_equal(pixels(out[DOWNLOAD]["value"]),
                          cli_restore(files["color"], tmp_path / "cli"))


def test_double_jpeg_verdict_and_auto_strength(handlers, files, tmp_path) -> None:
    out = last(handlers.on_upload(str(files["double"]), "auto", ""))
    info = handlers.analyse(files["double"])
    assert info.double["detected"] and info.double["kind"] == "non-aligned"
    assert info.double["qf1"] == 10 and info.header_qf == 60
    assert "| Double JPEG | **yes**: non-aligned, earlier QF 10" in out[INFO]
    assert info.auto_qf == min(10, info.predicted_qf)  # the earlier, stronger compression
    assert out[STRENGTH] == slider_at(info.auto_qf)
    assert np.array_equal(pixels(out[DOWNLOAD]["value"]),
                          cli_restore(files["double"], tmp_path / "cli"))


def test_png_has_no_header_qf_or_verdict(handlers, files) -> None:
    out = last(handlers.on_upload(str(files["png"]), "auto", ""))
    assert "| QF in the file | - |" in out[INFO] and "not a JPEG" in out[INFO]


def test_colour_and_grey_model_choice(handlers, files, tmp_path) -> None:
    out = last(handlers.on_upload(str(files["gray"]), "auto", ""))
    assert "`gray`" in out[INFO] and pixels(out[DOWNLOAD]["value"]).shape == (64, 80)
    # grey image on the colour model: what `fbcnn restore --model color` writes
    out = last(handlers.on_settings(str(files["gray"]), False, 40, "colour", ""))
    assert "`color`" in out[INFO] and "--qf 40 --model color grey.jpg" in out[STATUS]
    expected = cli_restore(files["gray"], tmp_path / "cli", "--qf", "40", "--model", "color")
    assert np.array_equal(pixels(out[DOWNLOAD]["value"]), expected)
    # a colour image on the grey model is refused in one line
    with pytest.raises(gr.Error, match="3 channels") as err:
        last(handlers.on_settings(str(files["color"]), True, 40, "grey", ""))
    assert "\n" not in err.value.message


def test_model_variants_follow_shipped_models(handlers, tiny_named_models, files) -> None:
    assert [v for _, v in handlers.variants()] == [""]
    save_network(tiny_network(3, seed=1), tiny_named_models / "color-double.safetensors")
    assert [v for _, v in handlers.variants()] == ["", "-double"]
    out = last(handlers.on_settings(str(files["color"]), True, 50, "auto", "-double"))
    assert "`color-double`" in out[INFO] and "--model color-double" in out[STATUS]
    with pytest.raises(gr.Error, match="not shipped"):  # no gray-double
        last(handlers.on_settings(str(files["gray"]), True, 50, "auto", "-double"))


def test_big_image_is_tiled_with_progress(tiny_named_models, tmp_path) -> None:
    path = tmp_path / "big.jpg"
    Image.fromarray(make_photo(150, 200)).save(path, quality=25)
    handlers = app.Handlers(ModelSet(tile=64), workdir=tmp_path / "work")
    calls = []

    class Progress:  # like gr.Progress: callable, and falsy (it has a length)
        def __call__(self, value, desc=None, unit="steps"):
            calls.append((value, desc))

        def __len__(self) -> int:
            return 0

    progress = Progress()
    out = last(handlers.process(str(path), False, 30, "auto", "", progress=progress))
    tiles = [v for v, d in calls if d == "restoring" and isinstance(v, tuple)]
    assert len(tiles) > 4 and tiles[-1][0] == tiles[-1][1] == len(tiles)
    # the double-JPEG analysis moves its bar (it used to sit at 0.0% until done)
    double = [v for v, d in calls if d == "looking for an earlier compression"]
    assert len(double) > 5 and double[0] == 0 and double[-1] == 1
    assert all(a < b for a, b in itertools.pairwise(double))
    expected = cli_restore(path, tmp_path / "cli", "--qf", "30", "--tile", "64")
    assert np.array_equal(pixels(out[DOWNLOAD]["value"]), expected)


def test_too_many_megapixels_is_refused_clearly(tiny_named_models, files, tmp_path) -> None:
    handlers = app.Handlers(ModelSet(), max_megapixels=0.01, workdir=tmp_path / "work")
    with pytest.raises(gr.Error) as err:
        last(handlers.on_upload(str(files["color"]), "auto", ""))
    assert err.value.message == ("photo.jpg: 128x96 is 0.0 megapixels, over this server's "
                                 "limit of 0.01; restore it with the command line instead "
                                 "(fbcnn restore FILE)")


def test_upload_over_the_limit_is_refused_before_decoding(handlers, tmp_path) -> None:
    """100 MP declared in a 400-byte PNG: refused from the header with the server's limit
    (decoding it first would fail on its missing data, or need 100 MB)."""
    path = huge_png(tmp_path / "huge.png", 10000, 10000)
    started = time.perf_counter()
    with pytest.raises(gr.Error) as err:
        last(handlers.on_upload(str(path), "auto", ""))
    assert err.value.message == ("huge.png: 10000x10000 is 100.0 megapixels, over this "
                                 "server's limit of 50; restore it with the command line "
                                 "instead (fbcnn restore FILE)")
    assert time.perf_counter() - started < 5


def test_errors_stay_and_clear_the_result(handlers, files, tmp_path) -> None:
    """A failure leaves no stale result or broken thumbnail: the outputs are cleared (and an
    unusable file taken off the input) before the error, which stays until dismissed."""
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"hello, not an image")
    events = handlers.on_upload(str(bad), "auto", "")
    cleared = next(events)
    with pytest.raises(gr.Error) as err:
        next(events)
    assert err.value.duration is None and err.value.message == "notes.jpg: not an image"
    assert cleared[COMPARE] is None and cleared[INFO] == ""
    assert cleared[DOWNLOAD]["value"] is None and cleared[DOWNLOAD]["interactive"] is False
    assert cleared[STATUS] == "Failed: notes.jpg: not an image"
    assert cleared[IMAGE] is None  # the file the browser cannot show either
    # a model that does not fit the image: the result goes, the image stays
    events = handlers.on_settings(str(files["color"]), True, 40, "grey", "")
    cleared = next(events)
    with pytest.raises(gr.Error, match="3 channels") as err:
        next(events)
    assert err.value.duration is None and cleared[COMPARE] is None
    assert cleared[IMAGE] == gr.skip()


def test_result_removed_when_gradio_drops_the_request(handlers, files) -> None:
    """Gradio closes the handler of a request whose client left after its result: the
    app's copy goes then too, not an hour later."""
    events = handlers.on_upload(str(files["color"]), "auto", "")
    *_, out = itertools.islice(events, 2)
    assert Path(out[DOWNLOAD]["value"]).is_file()
    events.close()
    assert not any(handlers.workdir.iterdir())


def test_dropped_request_stops_between_tiles(tiny_named_models, tmp_path) -> None:
    path = tmp_path / "big.jpg"
    Image.fromarray(make_photo(150, 200)).save(path, quality=25)
    handlers = app.Handlers(ModelSet(tile=64), workdir=tmp_path / "work")
    stop = app.Stop()
    seen = []

    def progress(value, desc=None, unit="steps"):  # the client goes away at tile 2
        seen.append(value)
        if value == (2, handlers.models.get("color").restorer.tile_count(150, 200, 16)):
            stop.set()

    with pytest.raises(app.Dropped):
        handlers.restore(path, progress=progress, stop=stop)
    total = seen[-1][1]
    assert seen[-1] == (2, total) and total > 4 and stop.where == f"after 2 of {total} tiles"
    assert not handlers.workdir.exists() or not any(handlers.workdir.iterdir())
    with pytest.raises(app.Dropped):  # gone before: stops in the analysis
        handlers.analyse(path, "colour", "", stop=stop)  # not the cached analysis
    assert stop.where == "during the double-JPEG analysis"


def test_cancelled_event_waits_for_its_worker_to_stop(tiny_named_models, tmp_path) -> None:
    """What Gradio calls: a cancelled request (its task cancelled, as /cancel does) stops
    its worker at the next tile and returns only then (one model call at a time)."""
    import asyncio

    path = tmp_path / "big.jpg"
    Image.fromarray(make_photo(384, 448)).save(path, quality=25)
    handlers = app.Handlers(ModelSet(tile=64), workdir=tmp_path / "work")
    tiles = []

    def progress(value, desc=None, unit="steps"):
        if desc == "restoring" and isinstance(value, tuple):
            tiles.append(value)
            time.sleep(0.02)

    async def run() -> None:
        async def consume():
            async for _ in handlers.upload_event(str(path), "auto", "", True, None, progress):
                pass

        task = asyncio.create_task(consume())
        while len(tiles) < 2:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        at_cancel = len(tiles)
        await asyncio.sleep(0.3)
        assert len(tiles) == at_cancel  # the worker had stopped when the task ended

    asyncio.run(run())
    assert 2 <= len(tiles) < tiles[-1][1] // 2 and handlers.dropped == 1
    assert not handlers.workdir.exists() or not any(handlers.workdir.iterdir())


def test_closed_page_drops_its_running_request(handlers) -> None:
    stops = [app.Stop(), app.Stop()]
    handlers._track("tab-1", stops[0], running=True)
    handlers._track("tab-2", stops[1], running=True)
    handlers.drop_session(gr.Request(session_hash="tab-1"))  # Gradio's unload event
    assert stops[0].is_set() and not stops[1].is_set()


@pytest.mark.parametrize("content, reason", [
    (b"hello, not an image", "notes.jpg: not an image"),
    (b"", "notes.jpg: empty file"),
    ("truncated", "notes.jpg: corrupt or truncated image"),
])
def test_bad_files_give_one_line(handlers, files, tmp_path, content, reason) -> None:
    bad = tmp_path / "upload" / "notes.jpg"  # Gradio keeps the uploaded name
    bad.parent.mkdir()
    if content == "truncated":
        content = files["color"].read_bytes()[:300]
    bad.write_bytes(content)
    with pytest.raises(gr.Error) as err:
        last(handlers.on_upload(str(bad), "auto", ""))
    assert err.value.message.startswith(reason) and "\n" not in err.value.message
    assert str(tmp_path) not in err.value.message  # no server paths on the page


def test_no_image_clears_and_settings_do_nothing(handlers) -> None:
    out = last(handlers.on_upload(None, "auto", ""))
    assert out[INFO] == "" and out[COMPARE] is None and out[DOWNLOAD]["interactive"] is False
    assert all(isinstance(v, dict) and v.get("__type__") == "update"
               for v in last(handlers.on_settings(None, True, 50, "auto", "")))


def test_strength_slider_shows_the_qf_used_or_is_greyed_out(tiny_named_models, handlers,
                                                            files) -> None:
    """Was: the slider showed 50 with auto ticked (on the page before an image, while an
    upload was read, after a failure). In auto it shows the QF the restore used (the
    prediction) and is greyed out while there is none; with auto off it is movable."""
    demo = app.build_app(ModelSet())
    slider = next(b for b in demo.blocks.values()
                  if getattr(b, "elem_id", None) == "fbcnn-strength")
    tick = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "fbcnn-auto")
    assert tick.value is True and slider.interactive is False  # the page, before an image
    assert slider.info == app.WAITING_INFO
    assert app.new_input()[-1] == GREYED  # an upload starts in auto: wait for its prediction
    first, out = itertools.islice(handlers.on_upload(str(files["color"]), "auto", ""), 2)
    predicted = handlers.analyse(files["color"]).predicted_qf
    assert first[STRENGTH] == out[STRENGTH] == slider_at(predicted) and out[AUTO] is True
    # auto, and the image cannot be restored (no prediction): greyed out
    events = handlers.on_settings(str(files["color"]), True, 40, "grey", "")
    assert next(events)[STRENGTH] == GREYED
    with pytest.raises(gr.Error):
        next(events)
    # an upload starts in auto, failing too (the box ticks again if the user had unticked it)
    bad = files["png"].with_name("notes.jpg")
    bad.write_bytes(b"not an image")
    events = handlers.on_upload(str(bad), "auto", "")
    cleared = next(events)
    assert cleared[STRENGTH] == GREYED and cleared[AUTO] is True
    with pytest.raises(gr.Error):
        next(events)
    # auto off: movable, at the user's value
    events = handlers.on_settings(str(files["color"]), False, 40, "grey", "")
    assert next(events)[STRENGTH] == {"__type__": "update", "interactive": True,
                                      "info": app.STRENGTH_INFO}
    with pytest.raises(gr.Error):
        next(events)
    # no image: the slider follows auto; removing the image goes back to auto
    assert last(handlers.on_settings(None, False, 50, "auto", ""))[STRENGTH]["interactive"]
    assert last(handlers.on_settings(None, True, 50, "auto", ""))[STRENGTH] == GREYED
    out = last(handlers.on_upload(None, "auto", ""))
    assert out[STRENGTH] == GREYED and out[AUTO] is True


def test_upload_input_passes_the_original_file(files, tmp_path) -> None:
    """The events take the upload unprocessed: the file itself reaches the handlers (a bad
    one too, which gr.Image would fail to decode with no message on the page)."""
    from gradio.data_classes import ImageData

    bad = files["png"].with_name("x.jpg")
    bad.write_bytes(b"not an image")
    sent = {"path": str(bad), "url": "http://127.0.0.1:7860/gradio_api/file=x.jpg",
            "orig_name": "x.jpg", "meta": {"_type": "gradio.FileData"}}
    assert app.upload_path(sent, tmp_path) == str(bad)
    assert app.upload_path(ImageData(path=str(bad), orig_name="x.jpg"), tmp_path) == str(bad)
    assert app.upload_path(None, tmp_path) is None
    assert app.upload_path(str(bad), tmp_path) == str(bad)  # direct calls
    # an image sent inline (data: URL) is written as its own bytes, not decoded and saved
    # again (gr.Image wrote it as a WebP)
    import base64

    jpeg = files["color"].read_bytes()
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    written = Path(app.upload_path({"path": None, "url": url}, tmp_path / "work"))
    assert written.read_bytes() == jpeg and written.suffix == ".jpg"
    named = app.upload_path({"url": url, "orig_name": "photo.jpg"}, tmp_path / "work")
    assert Path(named).name == "photo.jpg"
    with pytest.raises(gr.Error, match="not valid base64"):
        app.upload_path({"url": "data:image/jpeg;base64,@@@"}, tmp_path / "work")


def test_events_take_the_upload_unprocessed(tiny_named_models) -> None:
    """Was: the input's own preprocess was replaced, but Gradio rebuilds a session's copy of
    a component from its constructor arguments when an event updates it (every result
    does), and the copy decoded the next upload: a bad file after a good one failed inside
    Gradio, with no message on the page. Now no model call preprocesses its inputs.

    And an image dropped while the previous one is restored is restored next: Gradio's
    default for an event ("once") ignored it, and the page showed the new image beside the
    old one's result (and offered that for download)."""
    demo = app.build_app(ModelSet())
    handlers = demo.fbcnn_handlers
    calls = [fn for fn in demo.fns.values() if getattr(fn.fn, "__self__", None) is handlers
             and fn.fn.__name__ != "drop_session"]
    assert len(calls) == 6 and all(fn.preprocess is False for fn in calls)
    assert all(fn.trigger_mode == "always_last" for fn in calls)


def test_one_upload_runs_one_request(tiny_named_models) -> None:
    """An error showed twice ("Error (2)"): the work ran on the image's `change`, which
    Gradio's page fires twice for one upload (the second time as it settles the value);
    the second re-ran the request once the first had ended, quick failures (a bad file, an
    image over the pixel limit) and small images every time. It runs on `input` now, which
    fires once per upload, paste or removal, and not when an event sets the image."""
    demo = app.build_app(ModelSet())
    handlers = demo.fbcnn_handlers
    fns = list(demo.fns.values())
    image = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "fbcnn-input")
    upload = next(fn for fn in fns if fn.fn == handlers.upload_event)
    first = demo.fns[upload.trigger_after]
    assert first.targets == [(image._id, "input")] and first.fn is app.new_input
    assert not [fn for fn in fns if (image._id, "change") in fn.targets]


def test_consistency_toggle_reaches_the_restore(tiny_named_models, tmp_path) -> None:
    src = tmp_path / "q98.jpg"
    Image.fromarray(make_photo(64, 64)).save(src, quality=98)
    handlers = app.Handlers(workdir=tmp_path / "work")
    on = handlers.restore(src)
    off = handlers.restore(src, consistency=False)
    assert "--consistency off" in off.command and "--consistency" not in on.command
    decoded = np.asarray(Image.open(src).convert("RGB")).astype(int)
    change = [np.abs(np.asarray(Image.open(r.png)).astype(int) - decoded).mean()
              for r in (on, off)]
    assert change[0] < 0.5 * change[1]


def test_build_app_queues_one_model_call_at_a_time(tiny_named_models) -> None:
    demo = app.build_app(ModelSet(), max_megapixels=12)
    assert isinstance(demo, gr.Blocks)
    assert demo._queue.default_concurrency_limit == 1
    handlers = demo.fbcnn_handlers
    assert handlers.max_megapixels == 12
    kinds = {type(b).__name__ for b in demo.blocks.values()}
    assert {"ImageSlider", "DownloadButton", "Slider", "Checkbox", "Radio"} <= kinds
    model_calls = [fn for fn in demo.fns.values()
                   if getattr(fn.fn, "__self__", None) is handlers
                   and fn.fn.__name__ != "drop_session"]
    assert len(model_calls) == 6  # upload, strength, auto, colour/grey, model, consistency
    assert all(fn.concurrency_id == app.QUEUE and fn.concurrency_limit == 1
               for fn in model_calls)
    # a closed tab stops its running request
    unload = [fn for fn in demo.fns.values() if ("unload" in [t[1] for t in fn.targets])]
    assert [fn.fn for fn in unload] == [handlers.drop_session]


def test_serve_command(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(app, "serve", lambda **kw: seen.update(kw))
    result = CliRunner().invoke(main, ["serve", "--port", "7999", "--max-megapixels", "20"])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 7999
    assert seen["max_megapixels"] == 20
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--host" in help_text and "--max-megapixels" in help_text


@pytest.mark.parametrize("taken_on, host", [("127.0.0.1", "127.0.0.1"),
                                            ("0.0.0.0", "127.0.0.1"),
                                            ("127.0.0.1", "0.0.0.0")])
def test_serve_on_a_taken_port_is_one_line(monkeypatch, taken_on, host) -> None:
    """Was: Gradio's own words ("Cannot find empty port in range ... GRADIO_SERVER_PORT
    ... `server_port` parameter to `launch()`"), after loading everything. The port is
    checked first, by binding it."""
    import socket

    def loaded(*args, **kwargs):
        raise AssertionError("loaded before checking the port")

    monkeypatch.setattr(app, "_private_temp_dir", loaded)
    monkeypatch.setattr(app, "ModelSet", loaded)
    with socket.socket() as taken:
        taken.bind((taken_on, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--host", host, "--port", str(port)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: port {port} on {host} is in use: pass another with "
                               "--port, e.g. --port "), lines[0]
    suggested = int(lines[0].rsplit(" ", 1)[1])
    assert port < suggested <= port + 20
    assert "Traceback" not in result.output and "Gradio" not in result.output.lower()


def test_upload_limit_in_fractions_of_a_megabyte(tiny_named_models, monkeypatch) -> None:
    """Was: `fbcnn serve --max-upload-mb 0.5` failed with a traceback (Gradio parsed "0.5mb"
    as 0 and unit ".5MB"). The limit goes to Gradio in bytes."""
    import socket

    from gradio.utils import _parse_file_size

    demo = app.build_app(ModelSet())
    seen = {}
    monkeypatch.setattr(demo, "launch", lambda **kw: seen.update(kw))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(demo, port=port, max_upload_mb=0.5, block=False, quiet=True)
    assert _parse_file_size(seen["max_file_size"]) == 512 * 1024
    app.launch(demo, port=port, max_upload_mb=200, block=False, quiet=True)
    assert _parse_file_size(seen["max_file_size"]) == 200 * 1024 * 1024


def test_never_jpeg_upload_is_left_unchanged_until_a_strength_is_set(handlers, tmp_path) -> None:
    """As `fbcnn restore` does: a PNG without JPEG compression comes back as it was in auto;
    moving the strength restores it."""
    from PIL import ImageDraw, ImageFont

    im = Image.new("RGB", (320, 200), (246, 247, 249))
    draw = ImageDraw.Draw(im)
    for k in range(7):
        draw.text((10, 10 + 24 * k), "Settings  Open  Save  0123456789", fill=(20, 30, 40),
                  font=ImageFont.load_default(size=16))
    path = tmp_path / "shot.png"
    im.save(path)
    out = last(handlers.on_upload(str(path), "auto", ""))
    assert "left unchanged" in out[STATUS]
    assert np.array_equal(pixels(out[DOWNLOAD]["value"]), np.asarray(im))
    assert "JPEG compression in the pixels | none" in out[INFO]
    out = last(handlers.on_strength(str(path), 30, "auto", ""))
    assert "left unchanged" not in out[STATUS]
    assert not np.array_equal(pixels(out[DOWNLOAD]["value"]), np.asarray(im))


def test_cmyk_jpeg_upload_is_restored_as_the_cli_restores_it(handlers, tmp_path) -> None:
    """Was: refused ("CMYK images are not supported; convert to RGB first"). The reader
    converts it to RGB, for the app as for the CLI."""
    from conftest import cmyk_jpeg

    path = cmyk_jpeg(tmp_path / "print.jpg", make_photo(64, 80), quality=30)
    out = last(handlers.on_upload(str(path), "auto", ""))
    restored = pixels(out[DOWNLOAD]["value"])
    assert restored.shape == (64, 80, 3)
    assert np.array_equal(restored, cli_restore(path, tmp_path / "cli"))
