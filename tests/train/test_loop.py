"""The training loop on tiny configs: it learns, resumes bit for bit, exports, runs DDP."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import depthlens
from depthlens.errors import UsageError, WeightsError
from depthlens.io.rgbd import write_rgbd_folder
from depthlens.models.midas_small import build_network
from depthlens.models.weights import load_strict
from depthlens.synth.render import render_batch
from depthlens.train.config import (
    AugmentConfig,
    LossConfig,
    MetricConfig,
    ModelConfig,
    SourceConfig,
    TrainConfig,
    ValidationConfig,
    dump_config,
    load_config,
)
from depthlens.train.loop import (
    iterate_log,
    learning_rate,
    load_checkpoint_config,
    load_exported,
    train,
)
from depthlens.train.validate import affine_invariant_metrics

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
# A quarter-width network: the loop's behaviour, not the bundled model's, is under test.
SMALL = ModelConfig(channel_multiplier=0.5, features=16, head_channels=16)
NO_AUGMENT = AugmentConfig(
    crop_scale=(1.0, 1.0),
    crop_ratio=(0.1, 10.0),
    hflip=False,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: tiny convolutions gain nothing from two, and OpenMP threads
    spinning at barriers slow down tenfold when another process shares the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    """Eight synthetic scenes, 64 × 80, as an RGB-D folder (rendered once per module)."""
    folder = tmp_path_factory.mktemp("synth") / "scenes"
    write_rgbd_folder(render_batch(list(range(100, 108)), 64, 80), folder, "npy", normals=False)
    return folder


def tiny(tmp_path: Path, folder: Path, name: str = "run", **changes) -> TrainConfig:
    """configs/tiny.yaml reading ``folder``, writing under ``tmp_path / name``."""
    base = load_config(TINY)
    defaults = {
        "output_dir": str(tmp_path / name),
        "data": (SourceConfig(kind="folder", path=str(folder)),),
        "validation": dataclasses.replace(base.validation, every=0),
    }
    return dataclasses.replace(base, **{**defaults, **changes})


def losses(run_dir: Path) -> dict[int, float]:
    return {record["step"]: record["loss"] for record in iterate_log(run_dir / "log.jsonl")}


def test_learning_rate_warms_up_then_follows_a_cosine(tmp_path, synth_folder):
    config = tiny(tmp_path, synth_folder, steps=110)
    config = dataclasses.replace(
        config,
        optimizer=dataclasses.replace(config.optimizer, lr=1.0),
        schedule=dataclasses.replace(config.schedule, warmup_steps=10, min_lr=0.1),
    )
    assert learning_rate(0, config) == pytest.approx(0.1)
    assert learning_rate(9, config) == pytest.approx(1.0)
    assert learning_rate(10, config) == pytest.approx(1.0)
    assert learning_rate(60, config) == pytest.approx(0.55)  # half way down the cosine
    assert learning_rate(110, config) == pytest.approx(0.1)
    rates = [learning_rate(s, config) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(rates))


def test_affine_invariant_metrics_known_values():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 10.0, (16, 16))
    valid = np.ones_like(depth, bool)
    perfect = affine_invariant_metrics(3.0 / depth + 0.7, depth, valid)
    assert perfect == pytest.approx({"abs_rel": 0.0, "delta1": 1.0}, abs=1e-9)
    noisy = affine_invariant_metrics(1.0 / depth + rng.normal(0, 0.05, depth.shape), depth, valid)
    assert noisy is not None and 0.01 < noisy["abs_rel"] < 0.5 and noisy["delta1"] < 1.0
    assert affine_invariant_metrics(1.0 / depth, depth, np.zeros_like(valid)) is None
    far = depth.copy()
    far[:8] = 500.0  # beyond max_depth: left out, not a huge error
    far_metrics = affine_invariant_metrics(1.0 / far, far, valid, max_depth=80.0)
    assert far_metrics == pytest.approx({"abs_rel": 0.0, "delta1": 1.0}, abs=1e-9)


def test_loss_decreases_on_a_fixed_folder(tmp_path, synth_folder):
    config = tiny(
        tmp_path,
        synth_folder,
        steps=30,
        bf16=False,
        model=SMALL,
        augment=NO_AUGMENT,
        ema_decay=None,
        checkpoint_every=100,
        schedule=dataclasses.replace(load_config(TINY).schedule, warmup_steps=4),
    )
    start = time.perf_counter()
    train(config)
    curve = losses(Path(config.output_dir))
    assert sorted(curve) == list(range(1, 31))
    first = np.mean([curve[s] for s in range(1, 6)])
    last = np.mean([curve[s] for s in range(26, 31)])
    assert last < 0.6 * first, (first, last)
    assert time.perf_counter() - start < 60


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, synth_folder) -> TrainConfig:
    """Six steps with EMA, one DataLoader worker, validation and checkpoints at 3 and 6."""
    tmp_path = tmp_path_factory.mktemp("straight")
    config = tiny(
        tmp_path,
        synth_folder,
        steps=6,
        checkpoint_every=3,
        num_workers=1,
        validation=dataclasses.replace(load_config(TINY).validation, every=3, images=2),
    )
    train(config)
    return config


def test_checkpoint_holds_the_config_and_resume_is_bit_identical(tmp_path, straight_run):
    straight = Path(straight_run.output_dir)
    config = dataclasses.replace(straight_run, output_dir=str(tmp_path / "pieces"))
    pieces = Path(config.output_dir)

    checkpoint = train(config, stop_at=3)
    assert checkpoint == pieces / "checkpoint.pt"
    assert load_checkpoint_config(checkpoint) == config
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["step"] == 3 and saved["ema"] is not None and "optimizer" in saved
    assert not (pieces / "export").exists()

    train(config, resume=True)
    expected, resumed = losses(straight), losses(pieces)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]  # no step logged twice
    assert resumed == expected  # bit for bit: same floats, not just close
    records = {r["step"]: r for r in iterate_log(pieces / "log.jsonl")}
    assert {"val_abs_rel", "val_delta1", "val_n"} <= set(records[3]) and records[6]["val_n"] == 2
    final_a = torch.load(straight / "checkpoint.pt", weights_only=True)
    final_b = torch.load(pieces / "checkpoint.pt", weights_only=True)
    for key, value in final_a["ema"].items():
        assert torch.equal(value, final_b["ema"][key]), key


def test_export_loads_through_depthlens_and_holds_the_ema_weights(straight_run):
    export = Path(straight_run.output_dir) / "export"
    description = json.loads((export / "depthlens.json").read_text())
    assert description["model"] == "depthlens-small"
    assert description["kind"] == "relative_inverse" and description["ema"]

    estimator = depthlens.load_model(export, device="cpu")
    assert estimator.name == "depthlens-small"
    rgb = render_batch([7], 64, 80)[0].rgb
    result = estimator.predict(rgb)
    assert result.depth.shape == (64, 80) and np.isfinite(result.depth).all()

    # The same weights built from the JSON alone, and the fp32 EMA weights they came from.
    exported = load_exported(export)
    ema = build_network(straight_run.model.network_config())
    load_strict(ema, torch.load(export.parent / "checkpoint.pt", weights_only=True)["ema"], "ema")
    from depthlens.models.estimator import preprocess

    x = torch.from_numpy(preprocess(rgb, estimator.spec.input))[None]
    with torch.no_grad():
        a, b = exported(x), ema.eval()(x)
    torch.testing.assert_close(a, b, rtol=0, atol=2e-2 * float(b.abs().max()))
    assert not torch.equal(a, build_network(straight_run.model.network_config())(x))


@pytest.mark.parametrize("source", ["export", "checkpoint.pt", "export/model.safetensors"])
def test_init_from_starts_from_earlier_weights(tmp_path, synth_folder, straight_run, source):
    """A run with ``init_from`` starts at the named weights (the EMA weights of a
    checkpoint), not at a random draw: after one step at a negligible learning rate the
    parameters are still those weights."""
    origin = Path(straight_run.output_dir) / source
    config = tiny(
        tmp_path,
        synth_folder,
        steps=2,
        ema_decay=None,
        init_from=str(origin),
        optimizer=dataclasses.replace(straight_run.optimizer, lr=1e-9),
        schedule=dataclasses.replace(straight_run.schedule, min_lr=0.0),
    )
    checkpoint = torch.load(train(config, stop_at=1), weights_only=True)
    expected = torch.load(Path(straight_run.output_dir) / "checkpoint.pt", weights_only=True)["ema"]
    names = [name for name, _ in build_network(config.model.network_config()).named_parameters()]
    tolerance = 1e-3 if source.startswith("export") else 1e-6  # exports are stored in fp16
    for name in names:
        torch.testing.assert_close(
            checkpoint["model"][name], expected[name], rtol=tolerance, atol=tolerance
        )
    assert load_checkpoint_config(Path(config.output_dir) / "checkpoint.pt").init_from == str(
        origin
    )


def test_init_from_a_missing_path_or_another_network_is_refused(
    tmp_path, synth_folder, straight_run
):
    with pytest.raises(UsageError, match="does not exist"):
        train(tiny(tmp_path, synth_folder, "missing", init_from=str(tmp_path / "nowhere")))
    other = tiny(
        tmp_path,
        synth_folder,
        "other",
        model=SMALL,
        init_from=str(Path(straight_run.output_dir) / "export"),
    )
    with pytest.raises(WeightsError, match="do not fit the network"):
        train(other)


def test_refuses_to_overwrite_a_run_or_resume_nothing(tmp_path, synth_folder, straight_run):
    with pytest.raises(UsageError, match="already holds a run; pass --resume"):
        train(dataclasses.replace(straight_run))
    with pytest.raises(UsageError, match="no checkpoint at"):
        train(tiny(tmp_path, synth_folder, "empty"), resume=True)
    other = dataclasses.replace(straight_run, model=ModelConfig(features=48))
    with pytest.raises(UsageError, match="differs from the config"):
        train(other, resume=True)


def test_metric_training_through_the_canonical_camera(tmp_path, synth_folder):
    config = tiny(
        tmp_path,
        synth_folder,
        steps=2,
        bf16=False,
        metric=MetricConfig(enabled=True, focal=1000.0, transform="label"),
        loss=LossConfig(ssi_trimmed_mae=0.0, gradient_matching=0.0, silog=1.0, virtual_normal=0.5),
        model=dataclasses.replace(SMALL, non_negative=True),
        validation=ValidationConfig(every=2, images=1, size=(64, 80)),
    )
    train(config)
    records = list(iterate_log(Path(config.output_dir) / "log.jsonl"))
    assert all(np.isfinite(r["silog"]) and np.isfinite(r["virtual_normal"]) for r in records)
    assert np.isfinite(records[-1]["val_abs_rel"])
    description = json.loads((Path(config.output_dir) / "export" / "depthlens.json").read_text())
    assert description["kind"] == "metric" and description["canonical_focal"] == 1000.0


@pytest.mark.parametrize("transform", ["label", "none"])
def test_metric_exports_load_as_metric_models(tmp_path, synth_folder, transform):
    from depthlens.geometry.camera import Camera
    from depthlens.io.images import Image

    config = tiny(
        tmp_path,
        synth_folder,
        steps=1,
        bf16=False,
        export_name="depthlens-small-metric",
        metric=MetricConfig(enabled=True, focal=1000.0, transform=transform),
        loss=LossConfig(ssi_trimmed_mae=0.0, gradient_matching=0.0, silog=1.0),
        model=ModelConfig(log_output=True),
    )
    estimator = depthlens.load_model(train(config))
    assert estimator.kind == "metric"
    assert estimator.spec.canonical_focal == (1000.0 if transform == "label" else None)
    rgb = render_batch([7], 64, 80)[0].rgb
    near, far = (
        estimator.predict(Image(rgb, Camera(f, f, 40.0, 32.0, 80, 64), "scene")).depth
        for f in (50.0, 100.0)
    )
    assert (near > 0).all()
    # Canonical depth scales with the focal length (the same picture from twice as far
    # with a twice longer lens); a model trained on raw depth ignores the camera.
    np.testing.assert_allclose(far, near * (2.0 if transform == "label" else 1.0), rtol=1e-5)


def test_cli_train_with_overrides(tmp_path, synth_folder, capsys):
    from depthlens.cli import main

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(dump_config(tiny(tmp_path, synth_folder, "unused")))
    out = tmp_path / "cli-run"
    with pytest.raises(SystemExit) as info:
        main(["train", str(config_path), "--steps", "2", "--out", str(out)])
    assert info.value.code == 0, capsys.readouterr().err
    assert sorted(losses(out)) == [1, 2]
    assert (out / "export" / "model.safetensors").is_file()
    assert "Training output" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["train", str(config_path), "--steps", "2", "--out", str(out)])
    assert info.value.code == 2
    assert "already holds a run" in capsys.readouterr().err


def test_ddp_two_cpu_processes_on_gloo(tmp_path, synth_folder):
    """torchrun with two processes: the run finishes and rank 0 alone logs and saves."""
    config = tiny(
        tmp_path,
        synth_folder,
        "unused",
        steps=4,
        model=SMALL,
        checkpoint_every=2,
        validation=ValidationConfig(every=4, images=1, size=(64, 80)),
    )
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(dump_config(config))
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "depthlens.cli",
        "train",
        str(config_path),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < 60
    assert sorted(losses(out)) == [1, 2, 3, 4]  # one writer: no step logged twice
    assert [p.name for p in out.iterdir() if "checkpoint" in p.name] == ["checkpoint.pt"]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4
    assert (out / "export" / "model.safetensors").is_file()
    assert done.stdout.count("Training output") == 1  # rank 0 alone reports
    records = list(iterate_log(out / "log.jsonl"))
    assert records[-1]["val_n"] == 1
