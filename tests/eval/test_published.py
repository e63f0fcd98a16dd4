"""The published numbers: every entry names a zoo model, a dataset kind we read and
metrics we compute, and the table shows them beside ours."""

from __future__ import annotations

import pytest

from depthlens.eval.datasets import KINDS
from depthlens.eval.metrics import METRIC_NAMES
from depthlens.eval.protocol import ALIGNMENTS, protocol_for
from depthlens.eval.published import PUBLISHED, published_for
from depthlens.eval.run import EvalResult, markdown_table
from depthlens.models.registry import MODELS


def test_entries_are_consistent_with_the_zoo_and_the_metrics():
    assert PUBLISHED
    for model, datasets in PUBLISHED.items():
        assert model in MODELS, model
        for dataset, entry in datasets.items():
            assert dataset in KINDS, dataset
            assert entry.alignment in ALIGNMENTS and entry.source
            assert set(entry.metrics) <= set(METRIC_NAMES)
            for name, value in entry.metrics.items():
                upper = 100.0 if name == "bad_pixel_percent" else 1.0
                assert 0.0 < value < upper, (model, dataset, name, value)


def test_lookup_and_table_column():
    entry = published_for("depth-anything-v2-small", "kitti")
    assert entry is not None and entry.alignment == "disparity"
    assert published_for("midas-v21-small", "nyu") is not None
    assert published_for("depthlens-small", "nyu") is None
    assert published_for("depth-anything-v2-small", "folder") is None
    rows = [{"image": "a", **dict.fromkeys(METRIC_NAMES, 0.5)}]
    ours = EvalResult(
        "depth-anything-v2-small", "kitti:/data", "disparity", protocol_for("kitti"), rows
    )
    other = EvalResult("depthlens-small", "kitti:/data", "disparity", protocol_for("kitti"), rows)
    table = markdown_table([ours, other]).splitlines()
    assert table[0].endswith("| images | published |")
    assert table[2].endswith(f"| 1 | {entry.describe()} |") and "Table 2" in table[2]
    assert table[3].endswith("| 1 | - |")


@pytest.mark.parametrize("model", ["dpt-large", "dpt-hybrid", "midas-v21-small"])
def test_midas_family_reports_bad_pixels_on_kitti_and_nyu(model):
    for dataset in ("kitti", "nyu"):
        entry = published_for(model, dataset)
        assert entry is not None and set(entry.metrics) == {"bad_pixel_percent"}
