"""The published numbers: every entry names a zoo model, a dataset kind we read and
metrics we compute, and the table shows them beside ours."""

from __future__ import annotations

from typing import get_args

import pytest

from depthlens.eval.datasets import KINDS
from depthlens.eval.metrics import METRIC_NAMES
from depthlens.eval.protocol import ALIGNMENTS, Alignment, protocol_for
from depthlens.eval.published import NOT_TRANSCRIBED, PUBLISHED, VDA_NAMES, published_for
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


# The zoo rows added for issue 17: each must be a zoo model and be either given its
# published numbers or listed, with the reason, in NOT_TRANSCRIBED.
ISSUE_17_MODELS = (
    "depth-pro",
    "moge-2-vits-normal",
    "moge-2-vitb-normal",
    "moge-2-vitl-normal",
    "depth-anything-3-small",
    "depth-anything-3-base",
    "depth-anything-3-large",
    "depth-anything-3-giant",
    "depth-anything-3-mono-large",
    "depth-anything-3-metric-large",
)
# ... and for issue 19.
ISSUE_19_MODELS = (
    "zoedepth-nyu",
    "zoedepth-kitti",
    "zoedepth-nyu-kitti",
    "prompt-depth-anything-vits",
    "prompt-depth-anything-vitl",
    *(f"video-depth-anything-{name}" for name in VDA_NAMES),
)
ENTRIES = [(m, d) for m, datasets in PUBLISHED.items() for d in datasets]


def test_alignments_are_those_of_the_protocol():
    assert set(ALIGNMENTS) == set(get_args(Alignment))


@pytest.mark.parametrize(("model", "dataset"), ENTRIES, ids=[f"{m}-{d}" for m, d in ENTRIES])
def test_each_entry_names_zoo_model_dataset_metrics_and_alignment(model, dataset):
    entry = PUBLISHED[model][dataset]
    assert model in MODELS, f"{model!r} is not in the zoo (models/registry.py)"
    assert dataset in KINDS, f"{dataset!r} is not a dataset kind depthlens reads"
    unknown = set(entry.metrics) - set(METRIC_NAMES)
    assert not unknown, f"{model}/{dataset}: metrics.py computes no {sorted(unknown)}"
    assert entry.metrics, f"{model}/{dataset}: no metric values"
    assert entry.alignment in get_args(Alignment), entry.alignment
    assert entry.source.strip()
    # A relative model's numbers always come after some alignment.
    if MODELS[model].kind != "metric":
        assert entry.alignment != "none", (model, dataset)


@pytest.mark.parametrize("model", ISSUE_17_MODELS + ISSUE_19_MODELS)
def test_new_zoo_models_are_in_the_zoo_and_accounted_for(model):
    assert model in MODELS, f"{model!r} is not (yet) in models/registry.py"
    assert (model in PUBLISHED) != (model in NOT_TRANSCRIBED), model


def test_not_transcribed_names_zoo_models_with_a_reason():
    for model, reason in NOT_TRANSCRIBED.items():
        assert model in MODELS, model
        assert model not in PUBLISHED, model
        assert "arXiv" in reason or "README" in reason, model
        assert published_for(model, "kitti") is None
