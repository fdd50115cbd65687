"""Issue 21, item 1: a deployed model carries its whole input recipe.

An exported model's sidecar (``FILE.json``, the ONNX ``metadata_props``, the TorchScript
extra file) must say everything ``lmfloss predict`` does to an image file, so that someone
without lmfloss can reproduce it. The reference here is :func:`lmfloss.train.predict`; the
recipe is followed by :func:`_follow` below with NumPy and PIL only -- it imports nothing
of lmfloss's preprocessing and knows nothing the sidecar does not say. The images are
chosen where the intensity rules differ: 8-bit RGB spanning only 100..180 (``minmax``
stretches it, ``dtype`` leaves it), 12-bit values in 16-bit grayscale files, a constant
16-bit image, palette, RGBA and 8-bit grayscale files, sizes other than the run's.

Also: the model card's name (one per exported file; a run directory's own card is never
replaced) and its loss line for a loss without parameters.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lmfloss.cli import main
from tiers import fixture_marks

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning")]

SIZE = 32
TINY = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", str(SIZE), "--epochs", "1",
        "--device", "cpu", "--bootstrap", "0", "--batch-size", "8", "--loss", "ce", "--quiet"]
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
FORMATS = [pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="pip install 'lmfloss[export]'")),
           "torchscript"]


# ---- the images: where the intensity rules and the resize matter ---------------------------
def _image(kind: str, label: int, rng: np.random.Generator, shape: tuple[int, int]) -> Image.Image:
    h, w = shape
    if kind == "rgb-narrow":  # 8-bit RGB within 100..180: minmax stretches it, dtype keeps it
        return Image.fromarray((100 + rng.random((h, w, 3)) * 80 * (0.5 + label / 2)).astype(np.uint8))
    if kind == "gray16":  # 12-bit values in a 16-bit file
        return Image.fromarray((rng.random((h, w)) * 4095 * (0.4 + 0.6 * label)).astype(np.uint16))
    if kind == "gray16-constant":  # minmax makes it 0
        return Image.fromarray(np.full((h, w), 3000 + 20000 * label, dtype=np.uint16))
    if kind == "gray8":
        return Image.fromarray((60 + rng.random((h, w)) * (50 + 100 * label)).astype(np.uint8))
    if kind == "rgba":
        rgba = (rng.random((h, w, 4)) * 200 + 40 * label).astype(np.uint8)
        rgba[..., 3] = 255 - 100 * label
        return Image.fromarray(rgba)
    if kind == "palette":
        return Image.fromarray((rng.random((h, w, 3)) * (120 + 120 * label)).astype(np.uint8)).convert("P")
    raise AssertionError(kind)


KINDS = ("rgb-narrow", "gray16", "rgb-narrow", "gray16", "gray16-constant", "gray8", "rgba", "palette",
         "rgb-narrow", "gray16")
SHAPES = ((45, 37), (20, 50), (SIZE, SIZE), (64, 24), (33, 31))  # (height, width); one already at the run's size


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[Path]]:
    """``base.csv`` (path,label) over 2 x 10 PNG files of every kind, and the files."""
    folder = tmp_path_factory.mktemp("recipe-data")
    rng = np.random.default_rng(21)
    lines, files = ["path,label"], []
    for label, name in enumerate(("benign", "malignant")):
        for i, kind in enumerate(KINDS):
            path = folder / f"{name}{i}-{kind}.png"
            _image(kind, label, rng, SHAPES[i % len(SHAPES)]).save(path)
            lines.append(f"{path.name},{name}")
            files.append(path)
    table = folder / "base.csv"
    table.write_text("\n".join(lines) + "\n")
    modes = {Image.open(f).mode for f in files}
    assert {"RGB", "I;16", "L", "RGBA", "P"} <= modes, modes  # every branch of the recipe is exercised
    return table, files


def _export(run_dir: Path, fmt: str, out: Path) -> Path:
    assert main(["export", "--run", str(run_dir), "--format", fmt, "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
@fixture_marks(pytest.mark.slow)
def trained(dataset, tmp_path_factory):
    """``trained(rule)``: a finished 1-epoch run of that intensity rule and its exports
    (``{"run": RUN_DIR, "torchscript": FILE, "onnx": FILE}``, ONNX where the extra is
    installed), each trained and exported once, on first use."""
    table, _ = dataset
    made: dict[str, dict[str, Path]] = {}

    def get(rule: str) -> dict[str, Path]:
        if rule not in made:
            folder = tmp_path_factory.mktemp(f"recipe-{rule}")
            out = folder / "run"
            assert main(["train", "--dataset", "csv", "--csv", str(table), "--out", str(out), "--cache-dir",
                         str(folder / "cache"), "--intensity", rule, *TINY]) == 0
            (folder / "deploy").mkdir()
            made[rule] = {"run": out, "torchscript": _export(out, "torchscript", folder / "deploy" / "model.pt")}
            if HAS_ONNX:
                made[rule]["onnx"] = _export(out, "onnx", folder / "deploy" / "model.onnx")
        return made[rule]

    return get


@pytest.fixture(scope="module", params=["dtype", "minmax"])
def run(request, trained) -> tuple[str, dict[str, Path]]:
    """(the intensity rule, ``trained(rule)``) for each rule."""
    return request.param, trained(request.param)


@pytest.fixture(scope="module")
def reference(run, dataset) -> np.ndarray:
    """``lmfloss predict``'s probabilities of the image files."""
    from lmfloss.train import load_run, predict

    return predict(load_run(run[1]["run"]), dataset[1])


# ---- following the sidecar literally (NumPy and PIL only) ----------------------------------
def _to_uint8_rgb(image: Image.Image, step: dict) -> np.ndarray:
    """The ``to_uint8_rgb`` step: the first case naming the image's mode (or ``*``)."""
    case = next(c for c in step["cases"] if c["modes"] == "*" or image.mode in c["modes"])
    x = np.nan_to_num(np.asarray(image.convert("RGB") if case["read"] == "rgb" else image).astype(np.float64))
    rule = case["map"]
    if rule == "scale" and "valid_range" in case and not (case["valid_range"][0] <= x.min() and
                                                         x.max() <= case["valid_range"][1]):
        rule = case["outside_range"]
    if rule == "keep":
        out = x
    elif rule == "scale":
        lo, hi = case.get("clip") or (-np.inf, np.inf)
        out = np.rint(np.clip(x, lo, hi) * case["factor"])
    elif rule == "minmax":
        lo, hi = x.min(), x.max()
        out = np.zeros_like(x) if hi <= lo else np.rint((x - lo) * (step["maps"]["minmax"]["target_max"] / (hi - lo)))
    else:
        raise AssertionError(f"the recipe names a map this test does not know: {rule!r}")
    if case["read"] == "gray":
        out = np.repeat(out[..., None], 3, axis=2)
    return out.astype(np.uint8)


def _follow(recipe: dict, path: Path) -> np.ndarray:
    """An image file -> the exported graph's input ``uint8 [S, S, 3]``, by the recipe's steps."""
    image, x = None, None
    for step in recipe["steps"]:
        if step["in_graph"]:
            continue
        if step["op"] == "decode":
            image = Image.open(path)
            image.load()
        elif step["op"] == "to_uint8_rgb":
            x = _to_uint8_rgb(image, step)
        elif step["op"] == "resize":
            assert step["method"] == "pil_bilinear", step  # file datasets; the only kind trained here
            size = tuple(step["size"])
            if x.shape[:2] != size:
                x = np.asarray(Image.fromarray(x).resize(size[::-1], Image.Resampling.BILINEAR))
        else:
            raise AssertionError(f"the recipe names a step this test does not know: {step['op']!r}")
    return x


def _runner(path: Path, fmt: str):
    if fmt == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(["probabilities"], {"images": x})[0]
    module = torch.jit.load(str(path))
    return lambda x: module(torch.from_numpy(x)).numpy()


def _embedded(path: Path, fmt: str) -> dict:
    """The sidecar as the model file itself carries it."""
    if fmt == "onnx":
        import onnx

        return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["lmfloss_sidecar"])
    extra = {"lmfloss.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra["lmfloss.json"])


# ---- the tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_following_the_sidecar_literally_gives_predicts_probabilities(fmt, run, dataset, reference):
    rule, made = run
    model = made[fmt]
    info = _embedded(model, fmt)
    assert info == json.loads(Path(f"{model}.json").read_text())
    recipe = info["preprocessing"]
    pixels = np.stack([_follow(recipe, path) for path in dataset[1]])
    assert pixels.shape == (len(dataset[1]), SIZE, SIZE, 3) and pixels.dtype == np.uint8
    probabilities = _runner(model, fmt)(pixels)
    assert probabilities.shape == reference.shape == (20, 2)
    assert np.abs(probabilities - reference).max() <= 1e-5
    assert [s["op"] for s in recipe["steps"] if s["in_graph"]] == ["scale", "normalize", "network", "softmax"]
    assert info["task"] == "multiclass" and info["class_names"] == ["benign", "malignant"]
    assert info["intensity"]["rule"] == rule


def test_minmax_stretches_8_bit_images_and_dtype_keeps_them(run, dataset):
    """What the recipe says about 8-bit images is what happens: the narrow RGB file spans
    100..180 under dtype and 0..255 under minmax; the constant 16-bit file is 0 under minmax."""
    rule, made = run
    info = json.loads(Path(f"{made['torchscript']}.json").read_text())
    narrow = _follow(info["preprocessing"], dataset[1][2])  # already at the run's size: no resize
    constant = _follow(info["preprocessing"], dataset[1][4])
    if rule == "minmax":
        assert (narrow.min(), narrow.max()) == (0, 255) and not constant.any()
        assert "stretch" in info["intensity"]["eight_bit_images"]
    else:
        assert 100 <= narrow.min() and narrow.max() <= 180
        assert "unchanged" in info["intensity"]["eight_bit_images"]


@pytest.mark.skipif(not HAS_ONNX, reason="pip install 'lmfloss[export]'")
def test_onnx_metadata_props_state_the_recipes_key_facts(run):
    import onnx

    rule, made = run
    meta = {p.key: p.value for p in onnx.load(str(made["onnx"])).metadata_props}
    info = json.loads(meta["lmfloss_sidecar"])
    assert meta["task"] == "multiclass" and meta["intensity"] == rule
    assert meta["resize"] == f"pil_bilinear {SIZE}x{SIZE}"
    assert meta["normalization_mean"] == meta["normalization_std"] == "null"  # the run did not normalise
    assert json.loads(meta["preprocessing"]) == info["preprocessing"]
    assert json.loads(meta["class_names"]) == ["benign", "malignant"]


def test_intensity_help_says_what_minmax_does_to_8_bit_images(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    # The option's own entry (the usage block names it too): from its line to the next option.
    entry = re.search(r"^  --intensity \S+\n(.*?)^  -", out, flags=re.M | re.S)
    assert entry, out
    text = " ".join(entry.group(1).split())
    assert "minmax" in text and "8-bit" in text and "stretch" in text, text


# ---- the model card: one per exported file, and a whole loss line ------------------------------
def test_two_exports_into_one_folder_keep_two_cards_and_the_runs_own(trained):
    made = trained("dtype")
    folder, run_dir = made["torchscript"].parent, made["run"]
    other = _export(run_dir, "torchscript", folder / "other.pt")
    names = ["model.pt", "other.pt"] + (["model.onnx"] if "onnx" in made else [])
    assert sorted(p.name for p in folder.glob("*MODEL_CARD*")) == sorted(f"{n}.MODEL_CARD.md" for n in names)
    for name in names:
        fmt = "onnx" if name.endswith(".onnx") else "torchscript"
        assert f"`{name}` ({fmt})" in (folder / f"{name}.MODEL_CARD.md").read_text()
        assert json.loads((folder / f"{name}.json").read_text())["model_card"] == f"{name}.MODEL_CARD.md"
    for path in (other, Path(f"{other}.json"), folder / "other.pt.MODEL_CARD.md"):
        path.unlink()  # the folder as the fixture made it
    before = (run_dir / "MODEL_CARD.md").read_text()
    inside = _export(run_dir, "torchscript", run_dir / "exported.pt")
    assert (run_dir / "MODEL_CARD.md").read_text() == before and (run_dir / "exported.pt.MODEL_CARD.md").is_file()
    for path in (inside, Path(f"{inside}.json"), run_dir / "exported.pt.MODEL_CARD.md"):
        path.unlink()  # the run directory as training left it


def test_an_export_never_replaces_a_run_directorys_own_files(trained, capsys):
    run_dir = trained("dtype")["run"]
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for name in ("MODEL_CARD.md", "best.pt", "report"):  # report -> report.json as the sidecar
        capsys.readouterr()
        assert main(["export", "--run", str(run_dir), "--format", "torchscript", "--out", str(run_dir / name)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lmfloss export: error: "), lines
        assert "run directory's own" in lines[0] and repr(str(run_dir / name))[:-1] in lines[0], lines
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_the_card_of_a_loss_without_parameters_reads_whole(trained):
    card = Path(f"{trained('dtype')['torchscript']}.MODEL_CARD.md").read_text()
    assert [line for line in card.splitlines() if line.startswith("- Loss:")] == ["- Loss: `ce` (no parameters)."]


def test_the_loss_line_lists_parameters_when_there_are_some():
    from lmfloss.modelcard import model_card_text

    card = model_card_text({"loss": {"name": "focal", "params": {"gamma": 1.5}}, "class_names": ["a", "b"]},
                           {"loss": "focal"})
    assert "- Loss: `focal` with gamma=1.5." in card.splitlines()
    card = model_card_text({"loss": {"name": "ce", "params": {}}, "class_names": ["a", "b"]}, {"loss": "ce"})
    assert "- Loss: `ce` (no parameters)." in card.splitlines()
