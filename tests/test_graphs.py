"""The graphs shipped beside the weights (scripts/make_graphs.py): they read the shipped
safetensors, record their hash, run what torch runs, and are not used for other bytes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import tiny_network

from fbcnn.engine.model import load_model
from fbcnn.networks.checkpoints import load_network, save_network
from fbcnn.networks.export import ExportError
from fbcnn.networks.modelfiles import available_models, file_sha256, named_model_path
from fbcnn.networks.runtimes import GRAPH_WEIGHTS_KEY, openvino_installed, shipped_graph
from fbcnn.networks.weightgraphs import export_graph_on_weights

needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="needs openvino")


@pytest.mark.parametrize("name", available_models())
def test_every_shipped_model_has_its_graph_on_its_own_bytes(name):
    weights = named_model_path(name)
    graph = shipped_graph(weights)
    assert graph is not None and graph.stat().st_size < 200_000  # no copy of the weights
    model = onnx.load(str(graph), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[GRAPH_WEIGHTS_KEY] == file_sha256(weights)  # rerun scripts/make_graphs.py
    external = [i for i in model.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    assert len(external) >= 100
    assert {e.value for i in external for e in i.external_data if e.key == "location"} == {
        weights.name}


@needs_openvino
@pytest.mark.parametrize("name", ["color", "gray-double"])
def test_a_shipped_graph_runs_what_torch_runs(name):
    network = load_network(named_model_path(name)).network.eval()
    model = load_model(name, backend="openvino", precision="fp32")
    assert model.backend == "openvino"
    assert model.network.path == shipped_graph(named_model_path(name))
    assert model.network.qf_auto  # the export's metadata is read: one run per restore
    channels = network.config.in_channels
    image = np.random.default_rng(1).random((2, channels, 40, 56), dtype=np.float32)
    qf = np.array([[0.2], [0.7]], np.float32)  # the network's convention
    got, got_qf = model.network.run_array(image, qf)
    with torch.no_grad():
        want, want_qf = network(torch.from_numpy(image), torch.from_numpy(qf))
    assert np.abs(got - want.numpy()).max() < 1e-4
    assert np.abs(got_qf - want_qf.numpy()).max() < 1e-5


@needs_openvino
def test_a_graph_beside_other_bytes_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("FBCNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FBCNN_BACKEND", raising=False)
    weights = tmp_path / "color.safetensors"
    save_network(tiny_network(3), weights)
    graph = export_graph_on_weights(weights)
    assert graph == tmp_path / "color.onnx" and graph.stat().st_size < 100_000
    model = load_model(weights, precision="fp32")
    assert (model.backend, model.network.path) == ("openvino", graph)
    save_network(tiny_network(3, seed=5), weights)  # new bytes under the old graph
    model = load_model(weights, precision="fp32")
    assert model.backend == "openvino" and model.network.path != graph  # its own export
    with torch.no_grad():
        want, _ = tiny_network(3, seed=5)(torch.full((1, 3, 16, 16), 0.5))
    got, _ = model.network.run_array(np.full((1, 3, 16, 16), 0.5, np.float32))
    assert np.abs(got - want.numpy()).max() < 1e-4


def test_a_graph_is_written_beside_its_weights_only(tmp_path):
    weights = tmp_path / "a" / "m.safetensors"
    weights.parent.mkdir()
    save_network(tiny_network(1), weights)
    with pytest.raises(ExportError, match="beside its weights"):
        export_graph_on_weights(weights, tmp_path / "m.onnx")
    shutil.copy(weights, tmp_path / "m.pth")
    with pytest.raises(ExportError, match="not a .safetensors"):
        export_graph_on_weights(tmp_path / "m.pth")
    assert not list(tmp_path.rglob("*.onnx"))


@needs_openvino
def test_restore_and_inspect_run_where_torch_cannot_be_imported(tmp_path):
    """What an install without the torch extra does: restore and inspect the shipped
    models' way (OpenVINO on the shipped graphs), torch blocked from importing."""
    import json
    import os
    import subprocess
    import sys

    from conftest import make_photo
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.fromarray(make_photo(48, 64)).save(photo, quality=30)
    code = ("import sys\n"
            "sys.modules['torch'] = None  # import torch raises ImportError\n"
            "from fbcnn.frontends.cli import main\n"
            "main(sys.argv[1:])\n")
    env = {**os.environ, "FBCNN_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("FBCNN_BACKEND", None)
    for args in (["restore", str(photo), "-o", str(tmp_path / "out")],
                 ["restore", str(photo), "-o", str(tmp_path / "int8"), "--precision", "int8"],
                 ["inspect", "--json", str(photo)]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predicted_qf"] > 0
    restored = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert restored.shape == (48, 64, 3)
    assert (tmp_path / "int8" / "photo.png").is_file()


@pytest.mark.parametrize("name", available_models())
def test_every_shipped_model_has_its_parts_on_its_own_bytes(name):
    weights = named_model_path(name)
    for part in ("qf", "reconstruct"):
        graph = weights.with_name(f"{name}.{part}.onnx")
        model = onnx.load(str(graph), load_external_data=False)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta[GRAPH_WEIGHTS_KEY] == file_sha256(weights)  # rerun scripts/make_graphs.py
        assert meta["fbcnn.part"] == part and graph.stat().st_size < 200_000


@needs_openvino
def test_prepare_compiles_what_a_restore_runs_before_the_first_image():
    """`fbcnn restore`'s prefetch thread calls `prepare`: both parts compiled there, so the
    first QF reading and the first tile do not wait for a compile; without the parts, the
    whole graph."""
    from fbcnn.engine.pipeline import ModelSet

    with_parts = load_model("color", precision="fp32")
    assert not with_parts.network._compiled_parts
    with_parts.prepare()
    assert set(with_parts.network._compiled_parts) == {"qf", "reconstruct"}
    whole = load_model("color", precision="fp32")
    whole.network.parts = {}
    whole.network._compiled = None
    whole.prepare()
    assert whole.network._compiled is not None and not whole.network._compiled_parts
    models = ModelSet(precision="fp32")
    thread = models.prefetch(Path(__file__).parents[1] / "examples" / "astronaut_qf10.jpg")
    assert thread is not None
    thread.join()
    assert set(models._loaded["color"].network._compiled_parts) == {"qf", "reconstruct"}


@needs_openvino
def test_tiles_run_the_reconstructor_and_the_qf_its_own_graph():
    """In fp32 the parts give exactly the whole graph's pixels and QF; a part made for other
    weights is not used."""
    from conftest import make_photo

    photo = make_photo(200, 230, seed=4)
    with_parts = load_model("color", precision="fp32", tile=128)
    whole = load_model("color", precision="fp32", tile=128)
    whole.network.parts = {}
    a, b = with_parts.restore_array(photo), whole.restore_array(photo)
    assert set(with_parts.network._compiled_parts) == {"qf", "reconstruct"}
    assert not whole.network._compiled_parts
    assert np.array_equal(a.image, b.image) and a.predicted_qf == pytest.approx(b.predicted_qf)
    stranger = load_model("color", precision="fp32", tile=128)
    stranger.network.metadata = {**stranger.network.metadata, GRAPH_WEIGHTS_KEY: "0" * 64}
    c = stranger.restore_array(photo)
    assert not stranger.network._compiled_parts and not stranger.network.parts
    assert np.array_equal(c.image, b.image)


@needs_openvino
@pytest.mark.parametrize("name", ["color", "gray"])
def test_the_int8_graph_follows_the_qf_it_is_fed(name):
    """The quantised graph restores close to the float one with its own prediction and with
    a fed QF (as every tile is fed the global QF): a quantiser on the QF input would clamp
    a fed QF to what calibration saw."""
    from conftest import make_photo

    from fbcnn.networks.runtimes import shipped_graph

    weights = named_model_path(name)
    assert shipped_graph(weights, "int8") is not None  # scripts/make_int8_graphs.py
    int8 = load_model(name, precision="int8")
    float_ = load_model(name, precision="fp32")
    assert int8.info.precision == "int8" and int8.backend == "openvino"
    channels = int8.channels
    image = make_photo(64, 96, channels=channels, seed=2).transpose(2, 0, 1)[None]
    x = image.astype(np.float32) / 255
    outputs = {}
    for qf in (None, 0.8, 0.2):  # the prediction; QF 20; QF 80 (network units)
        got = int8.network.run_array(x, qf)[0]
        want = float_.network.run_array(x, qf)[0]
        assert np.abs(got - want).mean() < 2 / 255, qf
        outputs[qf] = got
    assert np.abs(outputs[0.8] - outputs[0.2]).mean() > 1 / 255  # the QF matters


@needs_openvino
def test_openvino_is_imported_without_its_converter_which_still_works_later():
    """A restore's `import openvino` leaves out the model converter (`openvino.tools.ovc`:
    4% of a photo's whole restore), without taking it from code that wants it later."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from fbcnn.networks.openvino_runtime import import_openvino\n"
        "ov = import_openvino()\n"
        "ov.Core()\n"
        "assert 'openvino.tools.ovc' not in sys.modules, 'converter imported'\n"
        "assert import_openvino() is ov\n"
        "from openvino.tools.ovc import convert_model\n"
        "from fbcnn.networks.modelfiles import named_model_path\n"
        "from fbcnn.networks.runtimes import shipped_graph\n"
        "graph = ov.convert_model(str(shipped_graph(named_model_path('color'))))\n"
        "assert convert_model is not ov.convert_model and graph.inputs\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


@needs_openvino
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_openvino_runs_requests_side_by_side_when_the_threads_are_split(monkeypatch):
    """`fbcnn restore --jobs` splits the cores between images: OpenVINO then gets a stream
    per job (under the latency hint one stream ran the jobs' requests one at a time, each
    on its share of the cores: two jobs ran their networks on one core)."""
    import fbcnn.networks.openvino_runtime as openvino_runtime

    monkeypatch.setattr(openvino_runtime, "available_cpus", lambda: 2)
    network = load_model("color", backend="openvino").network
    network.set_threads(1)
    network.prepare()
    compiled = network._part("reconstruct")
    assert int(compiled.get_property("NUM_STREAMS")) == 2
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    network.set_threads(0)  # a run alone: one stream, every core
    network.prepare()
    assert int(network._part("reconstruct").get_property("NUM_STREAMS")) == 1
