"""Streaming depth over a video: outputs, lossless decoding, progress, failures,
truncated inputs."""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from depthlens.errors import UsageError
from depthlens.io.video import (
    MAX_FPS,
    FrameRateError,
    VideoError,
    VideoReader,
    write_video,
)
from depthlens.video.stabilize import DepthStabilizer
from depthlens.video.stream import MappedVideo, map_video, map_video_batches, predict_video
from tests.video import FakeEstimator, cut_video, moving_square

FRAMES = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    write_video(path, moving_square(FRAMES), fps=12)
    return path


def _png_depth(path: Path, offset: float, scale: float) -> np.ndarray:
    values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert values.dtype == np.uint16
    return np.where(values > 0, offset + scale * values.astype(np.float64), np.nan)


def test_png16_outputs_decode_to_the_prediction(clip: Path, tmp_path: Path) -> None:
    model = FakeEstimator()
    progress: list[tuple[int, int | None]] = []
    out = predict_video(
        model, clip, tmp_path / "out", batch_size=4, on_progress=lambda *a: progress.append(a)
    )
    assert out.frames == FRAMES and out.fps == pytest.approx(12.0)
    assert out.truncated is False and out.expected_frames == FRAMES
    assert progress == [(0, FRAMES), (4, FRAMES), (8, FRAMES), (12, FRAMES)]  # total first
    assert model.batches == [4, 4, 4]
    assert out.colour == tmp_path / "out" / "walk-depth.mp4"
    assert out.lossless == tmp_path / "out" / "walk-depth"
    assert out.sidecar == tmp_path / "out" / "walk-depth.json"
    assert sorted(os.listdir(tmp_path / "out")) == [
        "walk-depth",
        "walk-depth.json",
        "walk-depth.mp4",
    ]

    info = json.loads(out.sidecar.read_text())
    assert info["model"] == "fake-model" and info["kind"] == "relative_inverse"
    assert (info["width"], info["height"], info["frame_count"]) == (64, 48, FRAMES)
    assert info["truncated"] is False
    assert "expected_frames" not in info and "decoded_frames" not in info
    assert info["stabilization"]["enabled"] is True
    lossless = info["lossless"]
    assert lossless["format"] == "png16" and lossless["clipped_pixels"] == 0

    # What the model predicted, stabilised the same way, is what the PNGs hold.
    stabilizer = DepthStabilizer("relative_inverse")
    expected = [stabilizer(d, f) for d, f in zip(model.predicted, model.seen, strict=True)]
    pngs = sorted(out.lossless.iterdir())
    assert [p.name for p in pngs] == [f"{k:06d}.png" for k in range(FRAMES)]
    for png, want in zip(pngs, expected, strict=True):
        got = _png_depth(png, lossless["offset"], lossless["scale"])
        np.testing.assert_allclose(got, want, rtol=0, atol=lossless["scale"] / 2 + 1e-6)

    with VideoReader(out.colour) as video:
        assert (video.info.width, video.info.height) == (64, 48)
        assert video.info.frame_count == FRAMES
        assert len(list(video)) == FRAMES


def test_npz_chunks_hold_the_exact_depth(clip: Path, tmp_path: Path) -> None:
    stale = tmp_path / "walk-depth-chunk0009.npz"  # from an earlier, longer run
    stale.write_bytes(b"old")
    model = FakeEstimator()
    out = predict_video(
        model, clip, tmp_path, stabilize=False, lossless="npz", chunk_frames=5, batch_size=3
    )
    names = [f"walk-depth-chunk{k:04d}.npz" for k in range(3)]
    assert out.lossless == tmp_path / names[0]
    assert not stale.exists()
    info = json.loads(out.sidecar.read_text())
    assert info["lossless"]["files"] == names
    assert info["stabilization"]["enabled"] is False

    depth = []
    index = []
    for name in names:
        with np.load(tmp_path / name) as chunk:
            assert chunk["depth"].dtype == np.float32
            depth.append(chunk["depth"])
            index.append(chunk["frame_index"])
    assert [len(i) for i in index] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate(index), np.arange(FRAMES))
    np.testing.assert_array_equal(np.concatenate(depth), np.stack(model.predicted))


def test_metric_png16_is_in_millimetres(clip: Path, tmp_path: Path) -> None:
    model = FakeEstimator(kind="metric")
    out = predict_video(model, clip, tmp_path, colormap="turbo")
    lossless = json.loads(out.sidecar.read_text())["lossless"]
    assert (lossless["offset"], lossless["scale"]) == (0.0, 0.001)
    assert json.loads(out.sidecar.read_text())["units"] == "m"
    last = _png_depth(out.lossless / f"{FRAMES - 1:06d}.png", 0.0, 0.001)
    stabilizer = DepthStabilizer("metric")
    expected = [stabilizer(d, f) for d, f in zip(model.predicted, model.seen, strict=True)]
    np.testing.assert_allclose(last, expected[-1], atol=0.0005 + 1e-6)


@pytest.mark.parametrize(("mode", "message"), [("streaming", "see time"), ("live", "Unknown")])
def test_video_mode_is_for_models_that_see_time(
    clip: Path, tmp_path: Path, mode: str, message: str
) -> None:
    """A per-frame model takes the default mode only; nothing is written otherwise."""
    with pytest.raises(UsageError, match=message):
        predict_video(FakeEstimator(), clip, tmp_path / "out", video_mode=mode)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_bad_video_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    with pytest.raises(VideoError, match="not a video"):
        predict_video(FakeEstimator(), bad, tmp_path / "out")
    with pytest.raises(VideoError, match="does not exist"):
        predict_video(FakeEstimator(), tmp_path / "missing.mov", tmp_path / "out")
    with pytest.raises(UsageError, match="lossless"):
        predict_video(FakeEstimator(), bad, tmp_path / "out", lossless="exr")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("lossless", ["png16", "npz"])
def test_failure_midway_leaves_no_outputs(clip: Path, tmp_path: Path, lossless: str) -> None:
    with pytest.raises(RuntimeError, match="frame 6"):
        predict_video(
            FakeEstimator(fail_at=6),
            clip,
            tmp_path,
            lossless=lossless,
            chunk_frames=2,  # type: ignore[arg-type]
        )
    assert os.listdir(tmp_path) == []


def test_lossless_none_and_rerun_replaces(clip: Path, tmp_path: Path) -> None:
    predict_video(FakeEstimator(), clip, tmp_path)
    (tmp_path / "walk-depth" / "000099.png").write_bytes(b"stale")
    out = predict_video(FakeEstimator(), clip, tmp_path)
    assert len(os.listdir(out.lossless)) == FRAMES  # the old folder was replaced
    out = predict_video(FakeEstimator(), clip, tmp_path / "plain", lossless="none")
    assert out.lossless is None
    assert json.loads(out.sidecar.read_text())["lossless"] is None
    assert sorted(os.listdir(tmp_path / "plain")) == ["walk-depth.json", "walk-depth.mp4"]


def test_map_video(clip: Path, tmp_path: Path) -> None:
    seen: list[int] = []

    def side_by_side(frame: np.ndarray, index: int) -> np.ndarray:
        seen.append(index)
        return np.concatenate([frame, 255 - frame], axis=1)

    out = tmp_path / "pair.mp4"
    assert map_video(clip, out, side_by_side, fps=6) == MappedVideo(
        path=out, frames=FRAMES, fps=6.0, truncated=False, expected_frames=FRAMES
    )
    assert seen == list(range(FRAMES))
    with VideoReader(out) as video:
        assert (video.info.width, video.info.height, video.info.fps) == (128, 48, 6.0)
        assert video.info.frame_count == FRAMES

    def broken(frame: np.ndarray, index: int) -> np.ndarray:
        if index == 3:
            raise RuntimeError("broken frame")
        return frame

    with pytest.raises(RuntimeError, match="broken"):
        map_video(clip, tmp_path / "broken.gif", broken)
    assert not (tmp_path / "broken.gif").exists()
    assert sorted(os.listdir(tmp_path)) == ["pair.mp4"]


@pytest.mark.parametrize("lossless", ["png16", "npz"])
@pytest.mark.parametrize("fraction", [0.5, 0.75, 0.99])
def test_truncated_video_writes_its_frames_and_says_so(
    tmp_path: Path, lossless: str, fraction: float
) -> None:
    source = cut_video(tmp_path / "cut.mp4", 30, fraction)
    out = predict_video(
        FakeEstimator(),
        source,
        tmp_path / "out",
        lossless=lossless,  # type: ignore[arg-type]
        chunk_frames=8,
    )
    assert out.truncated is True and out.expected_frames == 30
    assert 0 < out.frames < 30
    info = json.loads(out.sidecar.read_text())
    assert info["truncated"] is True
    assert (info["expected_frames"], info["decoded_frames"]) == (30, out.frames)
    assert info["frame_count"] == out.frames
    # Every decoded frame is written, and nothing half-written is left beside them.
    with VideoReader(out.colour) as video:
        assert len(list(video)) == out.frames
        assert not video.truncated
    if lossless == "png16":
        assert len(os.listdir(out.lossless)) == out.frames
    assert not [name for name in os.listdir(tmp_path / "out") if name.startswith(".")]


def test_map_video_says_when_its_input_was_truncated(tmp_path: Path) -> None:
    source = cut_video(tmp_path / "cut.mp4", 30, 0.75)
    out = tmp_path / "copy.gif"
    result = map_video(source, out, lambda frame, index: frame)
    assert result.truncated is True and result.expected_frames == 30
    assert 0 < result.frames < 30 and result.path == out and result.fps == pytest.approx(30.0)
    with VideoReader(out) as video:
        assert len(list(video)) == result.frames
    assert sorted(os.listdir(tmp_path)) == ["copy.gif", "cut.mp4"]


def _failing_read_frames(good: int) -> Any:
    """imageio_ffmpeg.read_frames that gives ``good`` frames, then fails as ffmpeg does
    on a file it cannot decode further."""
    real = imageio_ffmpeg.read_frames

    def read_frames(path: str, **kwargs: Any) -> Iterator[Any]:
        frames = real(path, **kwargs)
        yield next(frames)  # the header
        for _ in range(good):
            yield next(frames)
        frames.close()
        raise RuntimeError("ffmpeg: Invalid data found when processing input")

    return read_frames


def test_video_failing_midway_leaves_no_outputs(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imageio_ffmpeg, "read_frames", _failing_read_frames(5))
    with pytest.raises(VideoError, match="corrupt: frame 5 could not be decoded"):
        predict_video(FakeEstimator(), clip, tmp_path / "depth", batch_size=2, chunk_frames=2)
    with pytest.raises(VideoError, match="corrupt"):
        map_video(clip, tmp_path / "effect.mp4", lambda frame, index: frame)
    assert os.listdir(tmp_path / "depth") == []
    assert sorted(os.listdir(tmp_path)) == ["depth"]


@pytest.mark.parametrize("fps", [1e-4, 1e-300, 0, -1, math.inf, math.nan, 1e6])
def test_map_video_refuses_bad_rates_before_reading(tmp_path: Path, fps: float) -> None:
    missing = tmp_path / "missing.mp4"  # not even opened: the rate is checked first
    with pytest.raises(FrameRateError, match="frame rate"):
        map_video_batches(missing, tmp_path / "out.gif", lambda frames, i: frames, fps=fps)
    assert os.listdir(tmp_path) == []


def test_rate_from_the_input_is_brought_into_range(tmp_path: Path) -> None:
    """A file may state any rate (VideoWriter would refuse 1000): the copy is written
    at the nearest rate a video may have."""
    source = tmp_path / "fast.mp4"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-f", "lavfi"]
    command += ["-i", "testsrc=size=64x48:rate=1000:duration=0.01", "-pix_fmt", "yuv420p"]
    subprocess.run([*command, str(source)], check=True)
    with VideoReader(source) as video:
        assert video.info.fps == pytest.approx(1000.0)
    result = map_video(source, tmp_path / "out.mp4", lambda frame, index: frame)
    assert (result.fps, result.frames, result.truncated) == (MAX_FPS, 10, False)
    out = predict_video(FakeEstimator(), source, tmp_path / "depth", lossless="none")
    assert out.fps == MAX_FPS and out.frames == 10
