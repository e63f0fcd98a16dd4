"""Pseudo-labels as tar shards: the sink writes them (deterministic, resumable), training reads
them exactly as it reads the same labels in an RGB-D folder."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import tarfile
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pytest

import depthlens
from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import write_png
from depthlens.io.images import Image, load_image
from depthlens.io.rgbd import MANIFEST
from depthlens.models.estimator import DepthResult
from depthlens.pipeline import InputResult
from depthlens.train.config import ModelConfig, SourceConfig, ValidationConfig, load_config
from depthlens.train.data import FolderSource, build_sources
from depthlens.train.loop import iterate_log, train
from depthlens.train.pseudo_label import PseudoLabelFolder, encode_disparity
from depthlens.train.shards import INDEX, PseudoLabelShards, ShardSource, read_index

ROOT = Path(__file__).resolve().parents[2]
Predictions = dict[Path, tuple[Image, DepthResult]]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four small photos (one in a subfolder) and a file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    for relative, (height, width) in [
        ("a.png", (40, 56)),
        ("b.png", (48, 64)),
        ("sub/c.png", (36, 36)),
        ("d.png", (32, 48)),
    ]:
        rows, cols = np.mgrid[0:height, 0:width]
        base = np.stack([rows * 4, cols * 3, (rows + cols) * 2], axis=-1)
        noise = rng.integers(0, 40, (height, width, 3))
        write_png(folder / relative, np.clip(base + noise, 0, 255).astype(np.uint8))
    (folder / "e-broken.png").write_text("not an image\n")
    return folder


@pytest.fixture(scope="module")
def predictions(photos) -> Predictions:
    """The bundled model's results on the photos; ``b`` has a camera, ``d`` comes from a
    metric teacher (depth in meters, one pixel without depth)."""
    estimator = depthlens.load_model("depthlens-small", device="cpu")
    images = {
        path: load_image(path) for path in sorted(photos.rglob("*.png")) if "e-" not in str(path)
    }
    b = photos / "b.png"
    images[b] = dataclasses.replace(images[b], camera=Camera(50.0, 52.0, 31.0, 25.0, 64, 48))
    results = dict(zip(images, estimator.predict_images(list(images.values())), strict=True))
    d = photos / "d.png"
    relative = results[d].depth.astype(np.float64)
    meters = (1.0 / (relative - relative.min() + 0.5)).astype(np.float32)
    meters[0, 0] = 0.0
    results[d] = dataclasses.replace(results[d], kind="metric", depth=meters)
    return {path: (image, results[path]) for path, image in images.items()}


def found_in(photos: Path, names: list[str] | None = None) -> list[tuple[Path, PurePath]]:
    """``(path, relative path)`` of the photos, as ``predict_files`` finds them."""
    paths = sorted(photos.rglob("*.png"))
    if names is not None:
        paths = [photos / name for name in names]
    return [(path, path.relative_to(photos)) for path in paths]


def run_sink(
    sink: Any,
    found: list[tuple[Path, PurePath]],
    predictions: Predictions,
    chunk: int = 2,
    committed_units: int | None = None,
) -> tuple[list[InputResult], list[Path]]:
    """Drive ``sink`` as the engine does: plan chunk by chunk, then per unit write each
    input (an input without a prediction fails as unreadable), flush, and commit the
    first ``committed_units`` units (None: all)."""
    todo: list[tuple[Path, Any]] = []
    skipped: list[Path] = []
    for start in range(0, len(found), chunk):
        more, less = sink.plan(found[start : start + chunk], Path("unused"))
        todo += more
        skipped += less
    unit = sink.unit or 2
    final: list[InputResult] = []
    for number, start in enumerate(range(0, len(todo), unit)):
        results = [
            sink.write(source, key, *predictions[source])
            if source in predictions
            else InputResult(str(source), error="it is not an image.")
            for source, key in todo[start : start + unit]
        ]
        results = sink.flush(results)
        if committed_units is None or number < committed_units:
            sink.commit(results)
        final += results
    return final, skipped


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_shards_hold_each_sample_as_png_target_and_metadata(photos, predictions, tmp_path):
    out = tmp_path / "shards"
    results, skipped = run_sink(PseudoLabelShards(out, shard_size=2), found_in(photos), predictions)
    assert skipped == []
    assert [Path(r.input).name for r in results] == [
        "a.png",
        "b.png",
        "d.png",
        "e-broken.png",
        "c.png",
    ]
    assert [r.ok for r in results] == [True, True, True, False, True]
    assert [r.written for r in results if r.ok] == [
        (out / "shard-000000.tar",),
        (out / "shard-000000.tar",),
        (out / "shard-000001.tar",),
        (out / "shard-000002.tar",),
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [INDEX, "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    )
    members = tar_members(out / "shard-000001.tar")
    assert list(members) == ["d.png", "d.depth.npy", "d.json"]  # the broken photo is left out
    index = read_index(out)
    assert [(e["name"], e["shard"]) for e in index] == [
        ("a", "shard-000000.tar"),
        ("b", "shard-000000.tar"),
        ("d", "shard-000001.tar"),
        ("sub--c", "shard-000002.tar"),
    ]
    for entry in index:
        path = photos / PurePath(entry["source"]).relative_to(photos)
        image, result = predictions[path]
        shard = (out / entry["shard"]).read_bytes()
        member = {s: shard[o : o + n] for s, (o, n) in entry["members"].items()}
        assert member == {
            s: tar_members(out / entry["shard"])[f"{entry['name']}.{s}"] for s in member
        }
        np.testing.assert_array_equal(load_image(member["png"]).rgb, image.rgb)
        target = np.load(io.BytesIO(member["depth.npy"]))
        teacher = result.depth.astype(np.float64)
        if result.kind == "metric":  # stored as inverse depth, the pixel without depth invalid
            teacher = np.where(teacher > 0, 1.0 / np.where(teacher > 0, teacher, 1.0), np.nan)
        stored, lo, hi = encode_disparity(teacher)
        assert target.dtype == np.float32
        np.testing.assert_array_equal(target, stored)
        metadata = json.loads(member["json"])
        assert metadata["disparity_min"] == lo and metadata["disparity_max"] == hi
        assert (metadata["name"], metadata["width"], metadata["height"]) == (
            entry["name"],
            image.width,
            image.height,
        )
        assert metadata["teacher"] == "depthlens-small" and metadata["source"] == str(path)
        assert ("fx" in metadata) == (path.name == "b.png")
    assert json.loads(tar_members(out / "shard-000000.tar")["b.json"])["fx"] == 50.0
    hole = np.load(io.BytesIO(tar_members(out / "shard-000001.tar")["d.depth.npy"]))
    assert hole[0, 0] == 0.0 and (hole.ravel()[1:] >= 1.0).all()  # the metric teacher's hole


def test_two_runs_write_identical_bytes(photos, predictions, tmp_path):
    for run in ("one", "two"):
        run_sink(PseudoLabelShards(tmp_path / run, shard_size=3), found_in(photos), predictions)
    tars = sorted(p.name for p in (tmp_path / "one").glob("*.tar"))
    assert tars == ["shard-000000.tar", "shard-000001.tar"]
    for name in [*tars, INDEX]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    with tarfile.open(tmp_path / "one" / tars[0]) as tar:
        for member in tar.getmembers():
            assert (member.mtime, member.uid, member.gid, member.mode) == (0, 0, 0, 0o644)
            assert (member.uname, member.gname) == ("", "")


def test_resume_skips_committed_names_and_ignores_an_uncommitted_shard(
    photos, predictions, tmp_path
):
    out = tmp_path / "shards"
    first = found_in(photos, ["a.png", "b.png", "d.png"])
    # A killed run: its second shard was written but never listed in the index.
    run_sink(PseudoLabelShards(out, shard_size=2), first, predictions, committed_units=1)
    assert (out / "shard-000001.tar").is_file()
    source = ShardSource(out)
    assert len(source) == 2 and {e["shard"] for e in source.entries} == {"shard-000000.tar"}

    results, skipped = run_sink(PseudoLabelShards(out, shard_size=2), found_in(photos), predictions)
    assert [p.name for p in skipped] == ["a.png", "b.png"]
    assert [Path(r.input).name for r in results] == ["d.png", "e-broken.png", "c.png"]
    index = read_index(out)
    assert [(e["name"], e["shard"]) for e in index] == [
        ("a", "shard-000000.tar"),
        ("b", "shard-000000.tar"),
        ("d", "shard-000001.tar"),  # the unlisted tar of the killed run, overwritten
        ("sub--c", "shard-000002.tar"),
    ]
    assert list(tar_members(out / "shard-000001.tar")) == ["d.png", "d.depth.npy", "d.json"]
    assert len(ShardSource(out)) == 4
    # Nothing left to do: every name is listed.
    again, skipped = run_sink(PseudoLabelShards(out, shard_size=2), found_in(photos), predictions)
    assert [Path(r.input).name for r in again] == ["e-broken.png"] and len(skipped) == 4


def test_clashing_names_across_plan_calls_get_numbered(photos, tmp_path):
    sink = PseudoLabelShards(tmp_path / "shards", shard_size=2)
    a = photos / "a.png"
    keys = [
        key
        for chunk in (
            [PurePath("a.png")],
            [PurePath("a.png"), PurePath("b.png")],
            [PurePath("a.png")],
        )
        for _, key in sink.plan([(a, relative) for relative in chunk], tmp_path)[0]
    ]
    assert [(key.name, key.shard) for key in keys] == [("a", 0), ("a-2", 0), ("b", 1), ("a-3", 1)]


def test_a_shard_that_cannot_be_written_fails_its_samples(photos, predictions, tmp_path):
    out = tmp_path / "shards"
    (out / "shard-000000.tar").mkdir(parents=True)  # a folder where the tar should go
    results, _ = run_sink(
        PseudoLabelShards(out, shard_size=2), found_in(photos, ["a.png", "b.png"]), predictions
    )
    assert [r.ok for r in results] == [False, False]
    assert all("shard-000000.tar" in str(r.error) for r in results)
    assert not (out / INDEX).exists()


def test_an_rgbd_folder_and_a_bad_shard_size_are_refused(photos, tmp_path):
    (tmp_path / MANIFEST).write_text("")
    with pytest.raises(UsageError, match="holds an RGB-D folder"):
        PseudoLabelShards(tmp_path).plan(found_in(photos, ["a.png"]), tmp_path)
    with pytest.raises(UsageError, match="at least one photo"):
        PseudoLabelShards(tmp_path / "x", shard_size=0)
    with pytest.raises(UsageError, match=r"has no shards\.jsonl"):
        ShardSource(tmp_path)


def test_shard_source_gives_what_the_rgbd_folder_gives(photos, predictions, tmp_path):
    folder, shards = tmp_path / "folder", tmp_path / "shards"
    run_sink(PseudoLabelFolder(folder), found_in(photos), predictions)
    run_sink(PseudoLabelShards(shards, shard_size=3), found_in(photos), predictions)
    from_folder = FolderSource(folder, "relative_inverse")
    from_shards = ShardSource(shards)
    assert from_shards.target_kind == from_folder.target_kind == "relative_inverse"
    assert [e["name"] for e in from_shards.entries] == [
        e["name"] for e in from_folder.folder.entries
    ]
    for index, line in enumerate(from_folder.folder.entries):
        expected, got = from_folder.item(index), from_shards.item(index)
        for field in ("rgb", "target", "valid", "intrinsics"):
            a, b = getattr(expected, field), getattr(got, field)
            assert a.dtype == b.dtype, field
            np.testing.assert_array_equal(a, b, err_msg=field)
        # The JSON member is the manifest line without its file keys.
        metadata = json.loads(
            tar_members(shards / from_shards.entries[index]["shard"])[f"{line['name']}.json"]
        )
        assert metadata == {
            k: v for k, v in line.items() if k not in ("rgb", "depth", "depth_scale")
        }
    # Picklable for DataLoader workers once it has files open; a copy reads the same.
    copy = pickle.loads(pickle.dumps(from_shards))
    np.testing.assert_array_equal(copy.item(2).target, from_shards.item(2).target)
    draws = [from_shards.load(np.random.default_rng(5)).rgb.shape for _ in range(2)]
    assert draws[0] == draws[1]
    from_shards.close()


def test_training_runs_on_a_shards_source(photos, predictions, tmp_path):
    shards = tmp_path / "shards"
    run_sink(PseudoLabelShards(shards, shard_size=2), found_in(photos), predictions)
    config = dataclasses.replace(
        load_config(ROOT / "configs" / "tiny.yaml"),
        output_dir=str(tmp_path / "run"),
        steps=2,
        bf16=False,
        model=ModelConfig(channel_multiplier=0.5, features=16, head_channels=16),
        data=(SourceConfig(kind="shards", path=str(shards)),),
        validation=ValidationConfig(every=0),
    )
    assert isinstance(build_sources(config)[0], ShardSource)
    train(config)
    records = list(iterate_log(tmp_path / "run" / "log.jsonl"))
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in records)


def test_predict_files_writes_shards_and_resumes(photos, tmp_path):
    from depthlens.pipeline import predict_files

    out = tmp_path / "shards"

    def run() -> Any:
        sink = PseudoLabelShards(out, shard_size=2)
        return predict_files(
            [str(photos)], out, model="depthlens-small", device="cpu", recursive=True, sink=sink
        )

    report = run()
    assert (report.done, report.failed, report.skipped) == (4, 1, 0)
    assert [e["name"] for e in read_index(out)] == ["a", "b", "d", "sub--c"]
    assert sorted(p.name for p in out.glob("*.tar")) == [
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-000002.tar",
    ]
    again = run()
    assert (again.done, again.failed, again.skipped) == (4, 1, 4)
    assert len(read_index(out)) == 4


def test_config_needs_a_path_for_shards_and_refuses_them_for_metric_training(tmp_path):
    minimal = "output_dir: runs/x\nsteps: 10\nbatch_size: 4\ndata:\n  - kind: shards\n"
    path = tmp_path / "run.yaml"
    path.write_text(minimal)
    with pytest.raises(UsageError, match=r"'data\[0\]\.path' is required for a shards source"):
        load_config(path)
    path.write_text(minimal + "    path: labels\nmetric:\n  enabled: true\nloss:\n  silog: 1.0\n")
    with pytest.raises(UsageError, match="relative pseudo-labels, which metric training"):
        load_config(path)
    path.write_text(minimal + "    path: labels\n")
    assert load_config(path).data[0].kind == "shards"
