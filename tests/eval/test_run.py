"""The evaluation run end to end: a perfect model scores perfectly, an affine
distortion is removed, and ``depthlens eval`` writes its table and reports."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlens.cli import main
from depthlens.eval.datasets import open_dataset
from depthlens.eval.datasets.base import EvalItem
from depthlens.eval.protocol import kb_crop_item, protocol_for, score_prediction
from depthlens.eval.run import (
    evaluate_dataset,
    markdown_table,
    panel_dir,
    prediction_cache_dir,
    write_reports,
)
from depthlens.eval.vis import caption_height
from depthlens.io.rgbd import write_rgbd_folder
from depthlens.synth.render import render_batch


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Six synthetic scenes at 48 × 64 as an RGB-D folder, with exact NPY depth."""
    folder = tmp_path_factory.mktemp("eval") / "scenes"
    write_rgbd_folder(render_batch(list(range(500, 506)), 48, 64), folder, "npy", normals=False)
    return folder


@dataclass
class _Result:
    depth: np.ndarray


class OracleModel:
    """A fake estimator that answers each image with a function of its true depth."""

    def __init__(self, dataset, kind, transform):
        self.name, self.kind = f"oracle-{kind}", kind
        self.answers = {dataset[i].rgb.tobytes(): dataset[i] for i in range(len(dataset))}
        self.transform = transform
        self.cameras = []

    def predict(self, image):
        self.cameras.append(image.camera)
        item = self.answers[image.rgb.tobytes()]
        depth = np.where(item.valid, item.depth, 1.0)
        return _Result(self.transform(depth).astype(np.float32))


def test_perfect_and_affinely_distorted_predictions(scenes):
    dataset = open_dataset(f"folder:{scenes}")
    protocol = protocol_for("folder")
    metric = OracleModel(dataset, "metric", lambda d: d)
    perfect = evaluate_dataset(metric, dataset, protocol)  # type: ignore[arg-type]
    assert perfect.alignment == "none" and perfect.means["n"] == 6
    assert perfect.means["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert perfect.means["delta1"] == 1.0
    # Metric models need the dataset's camera, not an assumed one.
    manifest = [dataset[i].intrinsics for i in range(len(dataset))]
    assert all(k is not None for k in manifest)
    assert [(c.fx, c.fy, c.cx, c.cy) for c in metric.cameras] == manifest
    relative = OracleModel(dataset, "relative_inverse", lambda d: 7.0 / d + 0.3)
    aligned = evaluate_dataset(relative, dataset, protocol)  # type: ignore[arg-type]
    assert aligned.alignment == "depth_from_disparity"
    assert aligned.means["abs_rel"] < 1e-5 and aligned.means["delta1"] == 1.0
    # The same distortion scored as metric depth (no alignment) is far off.
    unaligned = evaluate_dataset(relative, dataset, protocol, alignment="none")  # type: ignore[arg-type]
    assert unaligned.means["abs_rel"] > 0.5
    limited = evaluate_dataset(metric, dataset, protocol, limit=2)  # type: ignore[arg-type]
    assert [row["image"] for row in limited.rows] == [dataset[0].name, dataset[1].name]
    table = markdown_table([perfect, aligned])
    assert table.count("\n") == 3 and "| oracle-metric | folder:" in table


def test_reports_round_trip(scenes, tmp_path):
    dataset = open_dataset(f"folder:{scenes}")
    result = evaluate_dataset(
        OracleModel(dataset, "metric", lambda d: d * 1.1),  # type: ignore[arg-type]
        dataset,
        protocol_for("folder"),
    )
    paths = write_reports([result], tmp_path / "out")
    summary = json.loads(paths[0].read_text())
    # 10 % too far everywhere, except where the 80 m cap clips the prediction.
    assert summary[0]["means"]["abs_rel"] == pytest.approx(0.1, abs=2e-3)
    assert len(summary[0]["images"]) == 6 and summary[0]["protocol"]["max_depth"] == 80.0
    with paths[1].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == [row["image"] for row in result.rows]
    assert float(rows[0]["abs_rel"]) == pytest.approx(result.rows[0]["abs_rel"])


def test_cli_eval_with_the_bundled_model(scenes, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "-d", f"folder:{scenes}", "-o", str(tmp_path / "r"), "--limit", "3"])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    assert "| depthlens-small | folder:" in captured.out and "| 3 |" in captured.out
    summary = json.loads((tmp_path / "r" / "results.json").read_text())
    assert summary[0]["means"]["n"] == 3 and 0.0 < summary[0]["means"]["delta1"] <= 1.0
    assert (tmp_path / "r" / "depthlens-small__folder.csv").is_file()


@pytest.mark.parametrize(
    ("args", "alignment", "silog"),
    [
        (["--protocol", "depth_anything"], "disparity", "depth_anything"),
        (["--protocol", "depth_anything", "--silog", "metric3d"], "disparity", "metric3d"),
        (["--protocol", "zoedepth", "--alignment", "median"], "median", "zoedepth"),
        ([], "depth_from_disparity", "zoedepth"),
    ],
)
def test_cli_eval_protocol_recipes(scenes, tmp_path, capsys, args, alignment, silog):
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as info:
        main(["eval", "-d", f"folder:{scenes}", "-o", str(out), "--limit", "2", *args])
    assert info.value.code == 0, capsys.readouterr().err
    summary = json.loads((out / "results.json").read_text())[0]
    assert (summary["alignment"], summary["silog"]) == (alignment, silog)
    # The scores follow the alignment: the same cached predictions scored directly.
    dataset = open_dataset(f"folder:{scenes}")
    (folder,) = (out / "predictions" / "depthlens-small").iterdir()
    first = dataset[0]
    expected = score_prediction(
        np.load(folder / f"{first.name}.npy"),
        first.depth,
        first.valid,
        protocol_for("folder"),
        alignment,
        silog,
    )
    assert expected is not None
    assert summary["images"][0]["abs_rel"] == pytest.approx(expected["abs_rel"])
    assert summary["images"][0]["silog"] == pytest.approx(expected["silog"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "mars:/nowhere"], "mars"),
        (["-d", "folder:{scenes}", "--protocol", "nerf"], "Unknown protocol"),
        (["-d", "folder:/no/such/folder"], "does not exist"),
        (["-d", "folder:{scenes}", "--alignment", "cubic"], "Unknown alignment"),
        (["-d", "folder:{scenes}", "--crop", "square"], "Unknown crop"),
        (["-d", "folder:{scenes}", "--silog", "mine"], "Unknown SILog"),
    ],
)
def test_cli_eval_errors_are_one_sentence(scenes, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["eval", *[a.format(scenes=scenes) for a in args], "-o", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert info.value.code == 2 and message in captured.err
    assert not (tmp_path / "r").exists()


class CountingModel(OracleModel):
    calls = 0
    weights = "oracle-weights-1"

    def predict(self, image):
        CountingModel.calls += 1
        return super().predict(image)


def test_predictions_are_cached_per_model_weights_and_dataset(scenes, tmp_path):
    dataset = open_dataset(f"folder:{scenes}")
    model = CountingModel(dataset, "relative_inverse", lambda d: 2.0 / d + 0.1)
    protocol = protocol_for("folder")
    first = evaluate_dataset(model, dataset, protocol, cache=tmp_path / "cache")  # type: ignore[arg-type]
    assert CountingModel.calls == 6
    # A rerun with another alignment predicts nothing again and scores the same maps.
    again = evaluate_dataset(model, dataset, protocol, "disparity", cache=tmp_path / "cache")  # type: ignore[arg-type]
    assert CountingModel.calls == 6 and len(again.rows) == 6
    same = evaluate_dataset(model, dataset, protocol, cache=tmp_path / "cache")  # type: ignore[arg-type]
    assert same.rows == first.rows
    # Other weights are another cache folder.
    model.weights = "oracle-weights-2"
    evaluate_dataset(model, dataset, protocol, limit=2, cache=tmp_path / "cache")  # type: ignore[arg-type]
    assert CountingModel.calls == 8
    assert len(list((tmp_path / "cache" / "oracle-relative_inverse").iterdir())) == 2


def test_panels_are_written_per_scored_item_and_agree_with_the_cache(scenes, tmp_path):
    dataset = open_dataset(f"folder:{scenes}")
    model = CountingModel(dataset, "relative_inverse", lambda d: 2.0 / d + 0.1)
    protocol = protocol_for("folder")
    cache = tmp_path / "cache"
    first = evaluate_dataset(model, dataset, protocol, cache=cache, save_vis=tmp_path / "a")  # type: ignore[arg-type]
    folder = panel_dir(tmp_path / "a", model, dataset)  # type: ignore[arg-type]
    assert folder == tmp_path / "a" / "oracle-relative_inverse-folder-scenes" == first.panels
    names = [f"{dataset[i].name}.png" for i in range(len(dataset))]  # already safe names
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    strip = caption_height(64, 48)
    for index, name in enumerate(names):
        with Image.open(folder / name) as image:
            assert image.mode == "RGB" and image.size == (4 * 64, strip + 48)
            np.testing.assert_array_equal(np.asarray(image)[strip:, :64], dataset[index].rgb)
    # The predictions are cached where they always were (the panels' folder is apart).
    cached = prediction_cache_dir(cache, model, dataset)  # type: ignore[arg-type]
    assert sorted(p.stem for p in cached.glob("*.npy")) == sorted(Path(n).stem for n in names)
    # From cached predictions, without predicting, the same panels.
    calls = CountingModel.calls
    evaluate_dataset(model, dataset, protocol, cache=cache, save_vis=tmp_path / "b")  # type: ignore[arg-type]
    assert CountingModel.calls == calls
    again = panel_dir(tmp_path / "b", model, dataset)  # type: ignore[arg-type]
    assert all((again / n).read_bytes() == (folder / n).read_bytes() for n in names)
    # Skipped items get no panel.
    skipped = evaluate_dataset(model, dataset, protocol, min_pixels=10**6, save_vis=tmp_path / "c")  # type: ignore[arg-type]
    assert len(skipped.skipped) == 6 and not (tmp_path / "c").exists()


def test_cli_eval_save_vis(scenes, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(
            [
                "eval",
                "-d",
                f"folder:{scenes}",
                "-o",
                str(tmp_path / "r"),
                "--limit",
                "2",
                "--save-vis",
            ]
        )
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    (folder,) = (tmp_path / "r" / "vis").iterdir()
    assert folder.name == "depthlens-small-folder-scenes"  # the model and the dataset
    panels = sorted(folder.iterdir())
    assert len(panels) == 2 and f"wrote 2 panels to {folder}" in captured.err
    for panel in panels:
        with Image.open(panel) as image:
            assert image.size == (4 * 64, caption_height(64, 48) + 48)


def test_cli_eval_save_vis_needs_an_output_folder(scenes, capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "-d", f"folder:{scenes}", "--save-vis"])
    captured = capsys.readouterr()
    assert info.value.code == 2
    assert "--save-vis needs -o/--output: the panels are written to OUTPUT/vis." in captured.err


class ShapeRecordingModel:
    """A fake relative model that answers every image with a ramp and records its size."""

    name, kind, weights = "ramp", "relative_inverse", None

    def __init__(self):
        self.shapes = []

    def predict(self, image):
        rgb = image.rgb
        self.shapes.append(rgb.shape[:2])
        rows = np.arange(rgb.shape[0], dtype=np.float32)[:, None] + 1.0
        return _Result(np.repeat(rows, rgb.shape[1], axis=1))


class KittiSized:
    """Two KITTI-sized (375 × 1242) items whose pixels say where they were."""

    kind, root = "kitti", "/kitti"

    def __len__(self):
        return 2

    def __getitem__(self, index):
        rows, cols = np.mgrid[0:375, 0:1242]
        rgb = np.stack([rows % 256, cols % 256, np.full_like(rows, index)], -1).astype(np.uint8)
        depth = (1.0 + rows / 10.0 + index).astype(np.float32)
        return EvalItem(
            f"{index:04d}", rgb, depth, np.ones((375, 1242), bool), (721.5, 721.5, 609.6, 172.9)
        )


def test_kb_crop_cuts_the_bottom_centre_before_predicting(tmp_path):
    item = KittiSized()[0]
    cut = kb_crop_item(item)
    assert cut.rgb.shape == (352, 1216, 3) and cut.depth.shape == (352, 1216)
    # top = 375 − 352 = 23, left = (1242 − 1216) // 2 = 13
    np.testing.assert_array_equal(cut.rgb, item.rgb[23:, 13:1229])
    np.testing.assert_array_equal(cut.depth, item.depth[23:, 13:1229])
    assert cut.intrinsics == pytest.approx((721.5, 721.5, 609.6 - 13, 172.9 - 23))
    with pytest.raises(ValueError, match="at least 352x1216"):
        kb_crop_item(EvalItem("small", item.rgb[:300], item.depth[:300], item.valid[:300]))

    model, data = ShapeRecordingModel(), KittiSized()
    protocol = protocol_for("kitti", kb_crop=True)
    result = evaluate_dataset(model, data, protocol, cache=tmp_path / "cache")  # type: ignore[arg-type]
    assert model.shapes == [(352, 1216)] * 2 and result.means["n"] == 2
    # The full frame is another input: it is predicted again and cached apart.
    full = evaluate_dataset(model, data, protocol_for("kitti"), cache=tmp_path / "cache")  # type: ignore[arg-type]
    assert model.shapes[2:] == [(375, 1242)] * 2 and full.means["n"] == 2
    assert len(list((tmp_path / "cache" / "ramp").iterdir())) == 2


@pytest.mark.parametrize(
    ("kind", "root", "kb_crop", "name"),
    [
        ("folder", "/data/scenes", False, "m-folder-scenes"),
        ("nyu", "/data/nyu_depth_v2", False, "m-nyu_depth_v2"),  # the kind is in the name
        ("kitti", "/data/KITTI", True, "m-KITTI-kb"),
        ("eth3d", "/data/my eth3d (2024)", False, "m-my_eth3d_2024"),
        ("folder", "/", False, "m-folder"),
    ],
)
def test_panel_folders_are_named_by_model_and_dataset(tmp_path, kind, root, kb_crop, name):
    @dataclass
    class Named:
        kind: str
        root: str

    model = ShapeRecordingModel()
    model.name = "m"
    assert panel_dir(tmp_path, model, Named(kind, root), kb_crop) == tmp_path / name  # type: ignore[arg-type]


def test_cli_kb_crop_is_for_kitti_only(scenes, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "-d", f"folder:{scenes}", "--kb-crop", "-o", str(tmp_path / "r")])
    assert info.value.code == 2
    assert "--kb-crop applies to kitti: datasets only" in capsys.readouterr().err


def test_cli_eval_a_zoo_model_from_an_official_checkpoint(
    scenes, midas_checkpoint, tmp_path, capsys
):
    """MiDaS v2.1 small from a .pt file in the official key layout (random weights)."""
    out = tmp_path / "r"
    args = ["eval", "-d", f"folder:{scenes}", "-m", "midas-v21-small", "-o", str(out)]
    with pytest.raises(SystemExit) as info:
        main([*args, "--weights", str(midas_checkpoint), "--limit", "2"])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    assert "| midas-v21-small | folder:" in captured.out
    summary = json.loads((out / "results.json").read_text())[0]
    assert summary["model"] == "midas-v21-small" and summary["means"]["n"] == 2
    assert all(math.isfinite(row["abs_rel"]) for row in summary["images"])
    (folder,) = (out / "predictions" / "midas-v21-small").iterdir()
    assert sorted(p.stem for p in folder.iterdir()) == sorted(r["image"] for r in summary["images"])


def test_cli_eval_compares_models_in_one_table(scenes, midas_checkpoint, tmp_path, capsys):
    out = tmp_path / "r"
    models = ["-m", "depthlens-small", "-m", str(midas_checkpoint)]  # a path names its model
    with pytest.raises(SystemExit) as info:
        main(["eval", "-d", f"folder:{scenes}", *models, "-o", str(out), "--limit", "2"])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    rows = [
        line for line in captured.out.splitlines() if line.startswith("| ") and "folder:" in line
    ]
    assert [row.split(" | ")[0] for row in rows] == ["| depthlens-small", "| midas-v21-small"]
    summary = json.loads((out / "results.json").read_text())
    assert [s["model"] for s in summary] == ["depthlens-small", "midas-v21-small"]
    assert summary[0]["means"] != summary[1]["means"]
    with pytest.raises(SystemExit) as info:
        main(["eval", "-d", f"folder:{scenes}", *models, "--weights", str(midas_checkpoint)])
    assert info.value.code == 2
    assert "--weights names one checkpoint" in capsys.readouterr().err
