"""``lmfloss export``: ONNX and TorchScript give ``lmfloss predict``'s probabilities, carry their
facts (metadata, sidecar, model card), and refuse bad input in one line without writing."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmfloss import __version__
from lmfloss.cli import main
from lmfloss.config import TrainConfig
from lmfloss.data.dataset import prepare_image
from lmfloss.data.transforms import NORMALIZATIONS
from lmfloss.export import ONNX_MODULES, DeployedModel, export_run, sidecar_info
from lmfloss.extras import install_hint
from tiers import fixture_marks

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BREAST = SHARED / "breastmnist" / "breastmnist.npz"
SIZE = 32  # BreastMNIST is 28 px: training resized it with torch, so TorchScript can too

# PyTorch deprecates torch.jit; the TorchScript format is still asked for and tested.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning")


@pytest.fixture(scope="module")
@fixture_marks(pytest.mark.slow, pytest.mark.realdata("data/breastmnist/breastmnist.npz"))
def trained(tmp_path_factory, one_torch_thread):
    """A finished binary run (BreastMNIST, ImageNet normalisation, a Youden threshold)."""
    from lmfloss.train import fit

    out = tmp_path_factory.mktemp("export") / "run"
    fit(TrainConfig(dataset="breastmnist", root=str(SHARED), model="resnet18", weights="none", image_size=SIZE,
                    normalize="imagenet", epochs=1, batch_size=64, lr=1e-3, device="cpu", bootstrap=50),
        out, quiet=True)
    return out


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """Both formats exported through the command line, into one folder."""
    folder = tmp_path_factory.mktemp("deploy")
    paths = {}
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
        if fmt == "onnx" and not all(importlib.util.find_spec(m) for m in ONNX_MODULES):
            continue  # the ONNX tests skip; TorchScript needs no extra
        assert main(["export", "--run", str(trained), "--format", fmt, "--out", str(folder / name), "--quiet"]) == 0
        paths[fmt] = folder / name
    return paths


@pytest.fixture(scope="module")
def images(trained):
    """Real test images as ``uint8 [H, W, 3]``: 28 px as stored, and at the run's size as
    training resized them."""
    raw = np.repeat(np.load(BREAST)["test_images"][:3, :, :, None], 3, axis=3)
    return raw, np.stack([prepare_image(x, SIZE, resize="torch") for x in raw])


@pytest.fixture(scope="module")
def reference(trained, images):
    """``lmfloss predict``'s probabilities of the images at the run's size."""
    from lmfloss.train import load_run, predict

    return predict(load_run(trained), list(images[1]))


def _report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def _exported(exported: dict, fmt: str) -> Path:
    if fmt not in exported:
        pytest.skip("the ONNX extra is not installed (pip install 'lmfloss[export]')")
    return exported[fmt]


def _onnx(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["probabilities"], {"images": x})[0]


def _torchscript(path: Path, extra: dict | None = None):
    module = torch.jit.load(str(path), _extra_files=extra if extra is not None else {})
    return lambda x: module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_probabilities_equal_predict_at_batch_1_and_3(fmt, exported, images, reference):
    run = _onnx(_exported(exported, fmt)) if fmt == "onnx" else _torchscript(exported[fmt])
    at_size = images[1]
    batch = run(at_size)
    assert batch.shape == reference.shape == (3, 2) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, reference, atol=1e-4, rtol=0)
    for i in range(3):
        np.testing.assert_allclose(run(at_size[i : i + 1]), reference[i : i + 1], atol=1e-4, rtol=0)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-5)


def test_torchscript_of_an_array_dataset_resizes_as_training_did(exported, trained, images):
    from lmfloss.train import load_run, predict

    raw = images[0]  # 28 px, as BreastMNIST is stored; predict resizes them with training's torch resize
    np.testing.assert_allclose(_torchscript(exported["torchscript"])(raw), predict(load_run(trained), list(raw)),
                               atol=1e-4, rtol=0)


def test_onnx_takes_only_the_runs_image_size(exported, images):
    with pytest.raises(Exception, match="invalid dimensions for input: images"):
        _onnx(_exported(exported, "onnx"))(images[0])


def test_a_pil_resized_run_refuses_other_sizes_in_the_graph():
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model = DeployedModel(network, 8, "none", resize_in_graph=False).eval()
    model(torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 RGB images \[N, 8, 8, 3\]"):
        model(torch.zeros(1, 9, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected uint8 RGB"):
        model(torch.zeros(1, 8, 8, 3))  # float pixels


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("task_name", ["multiclass", "multilabel", "binary1"])
def test_the_graph_ends_in_the_tasks_probabilities(fmt, task_name, request):
    """The export's last step is the run's task's probabilities: a softmax, a sigmoid per
    label, or a registered task's own (one logit -> ``[1 - p, p]``)."""
    if task_name == "binary1":
        request.getfixturevalue("binary_task")  # registers the one-logit binary task "binary1"
    from lmfloss.export import load_exported, onnx_bytes, torchscript_bytes
    from lmfloss.task import get_task

    if fmt == "onnx" and not all(importlib.util.find_spec(m) for m in ONNX_MODULES):
        pytest.skip("the export extra is not installed")
    task = get_task(task_name)
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, task.outputs(2)))
    model = DeployedModel(network, 8, "none", task=task).eval()
    data = onnx_bytes(model, {}) if fmt == "onnx" else torchscript_bytes(model, {})
    images = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    with torch.no_grad():
        logits = network(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
        expected = task.probabilities(logits).numpy()
    got = load_exported(data, fmt)(images)
    assert got.shape == expected.shape == (3, 2)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(load_exported(data, fmt)(images[:1]), expected[:1], atol=1e-6, rtol=0)


def test_an_output_kind_is_asked_of_the_tasks_target():
    import extra_task
    from lmfloss.export import output_kind
    from lmfloss.task import MULTICLASS, MULTILABEL

    assert output_kind(MULTICLASS).words(MULTICLASS) == {
        "meaning": "softmax class probabilities in class_names order", "counted": "classes"}
    assert output_kind(MULTILABEL).words(MULTILABEL) == {
        "meaning": "sigmoid probabilities, one per label in class_names order (multi-label: any subset of the "
                   "labels)", "counted": "labels (a sigmoid each)"}
    assert output_kind(extra_task.BINARY).words(extra_task.BINARY)["meaning"] == (
        "sigmoid class probabilities in class_names order")
    ordinal = dataclasses.replace(MULTICLASS, name="ordinal", target="cumulative")
    with pytest.raises(ValueError, match=r"target 'cumulative' has no export description; known targets: "
                                         r"\['index', 'multi-hot'\]"):
        output_kind(ordinal)


def test_onnx_metadata_and_sidecar_carry_the_runs_facts(exported, trained):
    path = _exported(exported, "onnx")
    import onnx

    report = _report(trained)
    test = report["test"]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == report["class_names"]
    assert meta["image_size"] == str(SIZE) and meta["input_layout"] == "NHWC uint8 RGB"
    assert meta["normalization"] == "imagenet" and meta["lmfloss_version"] == __version__
    assert meta["positive_class"] == test["positive_class"]
    assert float(meta["decision_threshold"]) == test["at_threshold"]["threshold"] == report["val"]["threshold_youden"]
    assert meta["data_fingerprint"] == report["data"]["fingerprint"]

    info = json.loads(Path(f"{path}.json").read_text())
    assert json.loads(meta["lmfloss_sidecar"]) == info
    assert info["format"] == "onnx" and info["file"] == "model.onnx" and info["lmfloss_version"] == __version__
    assert info["class_names"] == report["class_names"] and info["image_size"] == SIZE
    assert info["input"]["layout"] == "NHWC" and info["input"]["dtype"] == "uint8"
    assert info["input"]["shape"] == ["N", SIZE, SIZE, 3] and info["input"]["resize_in_graph"] is False
    assert info["normalization"]["mean"] == list(NORMALIZATIONS["imagenet"][0])
    assert info["normalization"]["std"] == list(NORMALIZATIONS["imagenet"][1])
    assert info["decision"]["positive_class"] == test["positive_class"]
    assert info["decision"]["threshold"] == test["at_threshold"]["threshold"]
    assert info["source"] == {"run_dir": str(trained.resolve()), "checkpoint": "best", "epoch": report["best_epoch"]}
    assert info["data"]["fingerprint"] == report["data"]["fingerprint"]
    for key in ("accuracy", "f1_macro", "f1_macro_ci95", "auc_macro_ovr", "ece", "sensitivity", "at_threshold"):
        assert info["test_metrics"][key] == test[key]


def test_torchscript_sidecar_is_embedded_and_says_any_size(exported):
    extra = {"lmfloss.json": ""}
    _torchscript(exported["torchscript"], extra)
    info = json.loads(Path(f"{exported['torchscript']}.json").read_text())
    assert json.loads(extra["lmfloss.json"]) == info
    assert info["input"]["shape"] == ["N", "H", "W", 3] and info["input"]["resize_in_graph"] is True


def test_export_writes_a_model_card_next_to_the_file(exported, trained):
    # One card per exported file, named after it: the ONNX export's card outlives the TorchScript export.
    report = _report(trained)
    for fmt, path in exported.items():
        card = Path(f"{path}.MODEL_CARD.md").read_text()
        assert "## Exported model" in card and f"`{path.name}` ({fmt})" in card
        assert f"{report['test']['f1_macro']:.4f}" in card and f"`{path.name}.json`" in card
    assert not (exported["torchscript"].parent / "MODEL_CARD.md").exists()


def test_metrics_and_threshold_only_for_the_weights_they_measured(trained):
    from lmfloss.train import load_run

    run = load_run(trained, checkpoint="last")
    report = _report(trained)
    same = sidecar_info(run, report, "onnx", "last", Path("m.onnx"), False)
    assert same["test_metrics"]["f1_macro"] == report["test"]["f1_macro"]  # last.pt is the best epoch
    other = sidecar_info(dataclasses.replace(run, epoch=run.epoch + 1), report, "onnx", "last", Path("m.onnx"), False)
    assert other["test_metrics"] is None and other["decision"]["threshold"] is None
    assert "not measured" in other["test_metrics_of"] and other["decision"]["rule"].startswith("argmax")


def _error(capsys, argv: list[str], folder: Path) -> str:
    before = sorted(folder.rglob("*"))
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmfloss export: error: "), lines
    assert sorted(folder.rglob("*")) == before  # nothing written, no temporary file left
    return lines[0]


def test_bad_format_checkpoint_and_out_are_one_line_and_write_nothing(trained, tmp_path, capsys):
    base = ["export", "--run", str(trained)]
    out = str(tmp_path / "m.onnx")
    assert "'tflite'" in _error(capsys, [*base, "--format", "tflite", "--out", out], tmp_path)
    assert "'middle'" in _error(capsys, [*base, "--checkpoint", "middle", "--format", "onnx", "--out", out], tmp_path)
    missing = tmp_path / "no-such-folder" / "m.onnx"
    assert "does not exist" in _error(capsys, [*base, "--format", "torchscript", "--out", str(missing)], tmp_path)
    (tmp_path / "a-file").write_text("x")
    line = _error(capsys, [*base, "--format", "torchscript", "--out", str(tmp_path / "a-file" / "m.pt")], tmp_path)
    assert "is a file, not a folder" in line
    (tmp_path / "folder.pt").mkdir()
    assert "is a folder" in _error(capsys, [*base, "--format", "torchscript", "--out", str(tmp_path / "folder.pt")],
                                   tmp_path)


def test_unfinished_runs_are_refused(trained, tmp_path, capsys):
    no_report = tmp_path / "no-report"
    no_report.mkdir()
    for name in ("config.yaml", "best.pt"):
        (no_report / name).write_bytes((trained / name).read_bytes())
    out = ["--format", "torchscript", "--out", str(tmp_path / "m.pt")]
    assert "not finished (no report.json)" in _error(capsys, ["export", "--run", str(no_report), *out], tmp_path)
    no_checkpoint = tmp_path / "no-checkpoint"
    no_checkpoint.mkdir()
    for name in ("config.yaml", "report.json"):
        (no_checkpoint / name).write_bytes((trained / name).read_bytes())
    assert "best.pt' does not exist" in _error(capsys, ["export", "--run", str(no_checkpoint), *out], tmp_path)
    assert "does not exist" in _error(capsys, ["export", "--run", str(tmp_path / "nowhere"), *out], tmp_path)


def test_missing_onnx_extra_names_the_install(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec answers None: not installed
    line = _error(capsys, ["export", "--run", str(trained), "--format", "onnx", "--out", str(tmp_path / "m.onnx")],
                  tmp_path)
    assert "onnxruntime" in line and install_hint("export") in line


def test_an_export_that_fails_its_check_writes_nothing(trained, tmp_path, monkeypatch):
    from lmfloss import errors, export

    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # every export "differs"
    with pytest.raises(errors.LmflossError, match="differs from PyTorch"):
        export_run(trained, tmp_path / "m.pt", "torchscript")
    assert list(tmp_path.iterdir()) == []


def test_the_package_imports_without_onnx():
    code = ("import sys\nfor name in ('onnx', 'onnxruntime', 'onnxscript'):\n    sys.modules[name] = None\n"
            "import lmfloss.export, lmfloss.cli\nlmfloss.cli.build_parser()\n"
            "lmfloss.export.require_onnx()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    # The imports and the parser worked; only require_onnx failed, naming the install.
    assert done.returncode != 0 and install_hint("export") in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_recipe_of_an_array_dataset_run_resizes_with_torch(fmt, exported, trained, images):
    """The sidecar's recipe for uint8 arrays (BreastMNIST, 28 px): decode and the intensity
    rule are skipped, the resize is torch's antialiased bilinear rounded to uint8 -- in the
    TorchScript graph, before the ONNX one. Followed by hand, it gives predict's probabilities."""
    from lmfloss.train import load_run, predict

    path = _exported(exported, fmt)
    info = json.loads(Path(f"{path}.json").read_text())
    recipe = info["preprocessing"]
    assert "skips decode and to_uint8_rgb" in recipe["arrays"] and info["task"] == "multiclass"
    steps = {step["op"]: step for step in recipe["steps"]}
    assert [s["op"] for s in recipe["steps"]] == ["decode", "to_uint8_rgb", "resize", "scale", "normalize",
                                                  "network", "softmax"]
    resize = steps["resize"]
    assert resize["method"] == "torch_bilinear_antialias" and resize["size"] == [SIZE, SIZE]
    assert resize["in_graph"] is (fmt == "torchscript")
    assert steps["normalize"]["mean"] == list(NORMALIZATIONS["imagenet"][0])
    assert steps["normalize"]["std"] == list(NORMALIZATIONS["imagenet"][1])
    assert steps["to_uint8_rgb"]["intensity"] == "dtype" and info["intensity"]["rule"] == "dtype"
    raw = images[0]
    x = raw
    if not resize["in_graph"]:  # as the step's "how" says
        t = torch.nn.functional.interpolate(torch.from_numpy(raw).permute(0, 3, 1, 2).float(), size=(SIZE, SIZE),
                                            mode="bilinear", align_corners=False, antialias=True)
        x = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    run = _onnx(path) if fmt == "onnx" else _torchscript(path)
    np.testing.assert_allclose(run(x), predict(load_run(trained), list(raw)), atol=1e-5, rtol=0)
