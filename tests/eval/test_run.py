"""The evaluation run end to end: a perfect model scores perfectly, an affine
distortion is removed, and ``depthlens eval`` writes its table and reports."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import numpy as np
import pytest

from depthlens.cli import main
from depthlens.eval.datasets import open_dataset
from depthlens.eval.protocol import protocol_for
from depthlens.eval.run import evaluate_dataset, markdown_table, write_reports
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

    def predict(self, rgb):
        item = self.answers[np.asarray(rgb).tobytes()]
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
    ("args", "message"),
    [
        (["-d", "mars:/nowhere"], "mars"),
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

    def predict(self, rgb):
        CountingModel.calls += 1
        return super().predict(rgb)


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
