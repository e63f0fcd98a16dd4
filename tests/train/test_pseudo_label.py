"""Pseudo-labelling: a teacher's relative inverse depth as an RGB-D folder training mixes in."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path, PurePath

import numpy as np
import pytest

import depthlens
from depthlens.errors import UsageError
from depthlens.io.depth_files import write_png
from depthlens.io.rgbd import RGBDFolder, write_rgbd_folder
from depthlens.synth.render import render_batch
from depthlens.train.config import ModelConfig, SourceConfig, ValidationConfig, load_config
from depthlens.train.data import FolderSource, build_dataset
from depthlens.train.loop import iterate_log, train
from depthlens.train.pseudo_label import (
    decode_disparity,
    encode_disparity,
    pseudo_label,
    sample_names,
)

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ROOT / "tests" / "expected" / "inputs"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two photos, a rendered scene in a subfolder, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(INPUTS / "square.png", folder / "square.png")
    shutil.copy(INPUTS / "wide.png", folder / "wide.png")
    write_png(folder / "sub" / "scene.png", render_batch([5], 64, 80)[0].rgb)
    (folder / "broken.png").write_text("not an image\n")
    return folder


@pytest.fixture(scope="module")
def labelled(photos, midas_checkpoint, tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    out = tmp_path_factory.mktemp("pseudo") / "labels"
    failed: list[tuple[str, str]] = []
    report = pseudo_label(
        [str(photos)],
        out,
        "midas-v21-small",
        weights=midas_checkpoint,
        device="cpu",
        recursive=True,
        on_failure=lambda name, reason: failed.append((name, reason)),
    )
    assert report.written == 3 and report.total == 4 and report.model == "midas-v21-small"
    assert report.failures == failed
    return out, failed


def test_encode_decode_round_trip_keeps_the_teacher_values():
    teacher = np.array([[-2.0, 0.0], [3.5, np.nan]], dtype=np.float32)
    stored, lo, hi = encode_disparity(teacher)
    assert (lo, hi) == (-2.0, 3.5)
    assert stored.dtype == np.float32 and stored[1, 1] == 0.0  # invalid
    assert stored[0, 0] == 1.0 and stored[1, 0] == 2.0 and (stored[:, 0] > 0).all()
    back = decode_disparity(stored, lo, hi)
    np.testing.assert_allclose(back[~np.isnan(teacher)], teacher[~np.isnan(teacher)], atol=1e-6)
    assert np.isnan(back[1, 1])
    flat, lo, hi = encode_disparity(np.full((2, 2), 7.0))
    assert (flat == 1.0).all() and lo == hi == 7.0
    with pytest.raises(ValueError, match="no finite value"):
        encode_disparity(np.full((2, 2), np.nan))


def test_sample_names_are_unique_file_names():
    names = sample_names(
        [PurePath("a/photo.jpg"), PurePath("photo.jpg"), PurePath("photo.png"), PurePath(".x.png")]
    )
    assert names == ["a--photo", "photo_jpg", "photo_png", "x"]
    assert sample_names([PurePath("x.jpg"), PurePath("x.jpg")]) == ["x_jpg", "x_jpg-2"]


def test_folder_is_an_rgbd_folder_marked_relative(labelled, photos, midas_checkpoint):
    out, failed = labelled
    assert [Path(name).name for name, _ in failed] == ["broken.png"]
    folder = RGBDFolder(out)
    assert sorted(folder.names) == ["square", "sub--scene", "wide"]
    for entry in folder.entries:
        assert entry["target"] == "relative_inverse" and entry["teacher"] == "midas-v21-small"
        assert entry["depth"].endswith(".npy")  # exact float32, no 16-bit quantisation
    # The stored target is the teacher's prediction, up to the recorded affine map.
    teacher = depthlens.load_model("midas-v21-small", midas_checkpoint, device="cpu")
    index = folder.names.index("wide")
    item, entry = folder[index], folder.entries[index]
    expected = teacher.predict(str(photos / "wide.png")).depth
    decoded = decode_disparity(item.depth, entry["disparity_min"], entry["disparity_max"])
    span = float(expected.max() - expected.min())
    np.testing.assert_allclose(decoded, expected, atol=1e-5 * span)
    np.testing.assert_array_equal(item.rgb, depthlens.load_image(photos / "wide.png").rgb)


def test_training_data_reads_pseudo_labels_as_relative_targets(labelled, tmp_path):
    out, _ = labelled
    source = FolderSource(out, "relative_inverse")
    assert source.target_kind == "relative_inverse" and len(source) == 3
    with pytest.raises(UsageError, match="holds relative pseudo-labels, but its source"):
        FolderSource(out, "depth")
    config = dataclasses.replace(
        load_config(ROOT / "configs" / "tiny.yaml"),
        output_dir=str(tmp_path / "run"),
        data=(SourceConfig(kind="pseudo", path=str(out)),),
    )
    sample = build_dataset(config)[0]
    assert not bool(sample["has_depth"]) and (sample["depth"] == 0).all()
    valid = sample["valid"]
    assert valid.any() and (sample["disparity"][valid] >= 1.0).all()
    assert (sample["disparity"][valid] <= 2.0).all()


def test_rerun_continues_and_metric_folders_are_not_mixed(labelled, photos, midas_checkpoint):
    out, _ = labelled
    report = pseudo_label(
        [str(photos / "wide.png"), str(photos / "square.png")],
        out,
        "midas-v21-small",
        weights=midas_checkpoint,
        device="cpu",
    )
    assert (report.written, report.skipped) == (0, 2)
    metric = out.parent / "metric"
    write_rgbd_folder(render_batch([1], 32, 32), metric, "npy")
    with pytest.raises(UsageError, match="not pseudo-labels"):
        pseudo_label([str(photos / "wide.png")], metric, "midas-v21-small", midas_checkpoint)


def test_cli_pseudo_label_reports_bad_files(photos, midas_checkpoint, tmp_path, capsys):
    from depthlens.cli import main

    out = tmp_path / "cli-labels"
    args = ["pseudo-label", str(photos), "-r", "-o", str(out), "--model", "midas-v21-small"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--weights", str(midas_checkpoint), "--device", "cpu"])
    captured = capsys.readouterr()
    assert info.value.code == 1  # one input failed, the others were written
    assert "broken.png" in captured.err
    assert "3 of 4 images labelled by midas-v21-small" in captured.out
    assert len(RGBDFolder(out)) == 3


def test_mixed_labelled_and_pseudo_training_runs(labelled, tmp_path):
    out, _ = labelled
    scenes = tmp_path / "scenes"
    write_rgbd_folder(render_batch([11, 12], 64, 80), scenes, "npy", normals=False)
    config = dataclasses.replace(
        load_config(ROOT / "configs" / "tiny.yaml"),
        output_dir=str(tmp_path / "run"),
        steps=3,
        bf16=False,
        model=ModelConfig(channel_multiplier=0.5, features=16, head_channels=16),
        data=(
            SourceConfig(kind="folder", path=str(scenes), weight=1.0),
            SourceConfig(kind="pseudo", path=str(out), weight=1.0),
        ),
        validation=ValidationConfig(every=0),
    )
    dataset = build_dataset(config)
    drawn = {dataset.source_of(k) for k in range(config.steps * config.batch_size)}
    assert drawn == {0, 1}
    train(config)
    records = list(iterate_log(tmp_path / "run" / "log.jsonl"))
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in records)
