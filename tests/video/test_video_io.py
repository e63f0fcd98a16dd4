"""Video files: MP4/GIF round trips, odd sizes, bad inputs, frame rates, truncated
files, no half-written outputs."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from depthlens.errors import DepthlensError, UsageError
from depthlens.io.video import (
    MAX_FPS,
    MIN_FPS,
    FrameRateError,
    VideoError,
    VideoReader,
    VideoWriter,
    check_fps,
    is_video_path,
    write_video,
)
from tests.video import cut_video, moving_square, noise_frames

# Frame rates no video may be written at: near 0 they overflowed the GIF writer.
BAD_RATES = [1e-4, 1e-300, 0, -1, math.inf, -math.inf, math.nan, 1e6, "fast", None]


def _error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_mp4_round_trip(tmp_path: Path) -> None:
    frames = moving_square(24)
    path = tmp_path / "clip.mp4"
    assert write_video(path, iter(frames), fps=24) == 24

    with VideoReader(path) as video:
        assert (video.info.width, video.info.height) == (64, 48)
        assert video.info.fps == pytest.approx(24.0)
        assert video.info.frame_count == 24
        assert video.info.duration == pytest.approx(1.0, abs=0.05)
        read = list(video)
    assert len(read) == 24
    for got, want in zip(read, frames, strict=True):
        assert got.shape == (48, 64, 3) and got.dtype == np.uint8
        assert _error(got, want) < 3.0  # H.264 at CRF 18
    # The square moved: the frames were not mixed up.
    assert _error(read[0], frames[-1]) > 10.0
    read[0][0, 0] = 7  # frames are writable copies


def test_reader_iterates_again_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, moving_square(6), fps=np.float32(10))  # numpy rates are fine
    with VideoReader(path) as video:
        first = next(iter(video))
        again = list(video)
    assert len(again) == 6
    np.testing.assert_array_equal(first, again[0])


def test_odd_size_is_padded_not_cropped(tmp_path: Path) -> None:
    frames = [frame[:25, :33] for frame in moving_square(5)]
    path = tmp_path / "odd.mp4"
    write_video(path, frames, fps=10)
    with VideoReader(path) as video:
        assert (video.info.width, video.info.height) == (34, 26)
        read = list(video)
    assert len(read) == 5
    assert _error(read[0][:25, :33], frames[0]) < 3.0
    # The added column repeats the last one.
    assert _error(read[0][:25, 33], frames[0][:, 32]) < 4.0


@pytest.mark.parametrize("suffix", [".mkv", ".mov", ".webm"])
def test_other_containers_round_trip(tmp_path: Path, suffix: str) -> None:
    frames = moving_square(4)
    path = tmp_path / f"clip{suffix}"
    write_video(path, frames, fps=12)
    with VideoReader(path) as video:
        assert video.info.frame_count == 4
        read = list(video)
    assert len(read) == 4
    assert _error(read[2], frames[2]) < 4.0


def test_gif_round_trip(tmp_path: Path) -> None:
    frames = moving_square(8)
    path = tmp_path / "clip.gif"
    with VideoWriter(path, fps=25) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.frames == 8
    assert path.read_bytes()[:6] == b"GIF89a"
    assert b"NETSCAPE2.0" in path.read_bytes()  # the looping extension

    with VideoReader(path) as video:
        assert video.info.frame_count == 8
        assert video.info.fps == pytest.approx(25.0)
        read = list(video)
    assert len(read) == 8
    for got, want in zip(read, frames, strict=True):
        assert _error(got, want) < 3.0


def test_missing_file_is_a_video_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="does not exist") as caught:
        VideoReader(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, DepthlensError)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"this is not a video at all" * 40, "not a video"), (b"", "empty")],
)
def test_garbage_or_empty_file_is_a_video_error(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=match) as caught:
        VideoReader(path)
    message = str(caught.value)
    assert str(path) in message and message.endswith(".") and "\n" not in message


def test_directory_is_a_video_error(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="directory"):
        VideoReader(tmp_path)


def test_exception_inside_writer_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stop"), VideoWriter(path, fps=10) as writer:
        for frame in moving_square(3):
            writer.write(frame)
        raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.gif"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="like the first"), VideoWriter(path, fps=10) as writer:
        writer.write(moving_square(1)[0])
        writer.write(np.zeros((10, 10, 3), np.uint8))
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.gif"]


def test_no_frames_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=10)
    assert os.listdir(tmp_path) == []


def test_writer_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="must end in"):
        VideoWriter(tmp_path / "out.png", fps=10)
    with pytest.raises(VideoError, match="frame rate"):
        VideoWriter(tmp_path / "out.mp4", fps=0)
    with pytest.raises(VideoError, match="quality"):
        VideoWriter(tmp_path / "out.mp4", fps=10, quality=11)
    writer = VideoWriter(tmp_path / "out.mp4", fps=10)
    with pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros((8, 8, 3), np.float32))
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_is_video_path() -> None:
    assert is_video_path("a/b/clip.MP4")
    assert is_video_path(Path("loop.gif"))
    assert not is_video_path("photo.jpg")
    assert not is_video_path("noext")


@pytest.mark.parametrize("fps", BAD_RATES)
@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_writer_refuses_rates_outside_the_range(tmp_path: Path, fps: object, suffix: str) -> None:
    with pytest.raises(FrameRateError) as caught:
        write_video(tmp_path / f"out{suffix}", moving_square(2), fps=fps)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message == (
        f"The frame rate must be {MIN_FPS:g} to {MAX_FPS:g} frames per second, not {fps}."
    )
    # A usage error (exit status 2, HTTP 422) that is also a video error.
    assert isinstance(caught.value, UsageError) and isinstance(caught.value, VideoError)
    assert caught.value.exit_code == 2
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fps", [MIN_FPS, MAX_FPS, np.float64(MIN_FPS), 25])
@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif"])
def test_rates_at_the_ends_of_the_range_are_written(
    tmp_path: Path, fps: float, suffix: str
) -> None:
    path = tmp_path / f"out{suffix}"
    assert write_video(path, moving_square(3), fps=fps) == 3
    with VideoReader(path) as video:
        assert len(list(video)) == 3
        if suffix != ".gif":  # GIF delays are whole hundredths of a second
            assert video.info.fps == pytest.approx(float(fps), rel=0.01)
    assert check_fps(fps) == float(fps)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".mov", ".gif"])
def test_healthy_videos_are_not_truncated(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    write_video(path, noise_frames(30), fps=30)
    with VideoReader(path) as video:
        assert not video.truncated  # nothing read yet
        assert len(list(video)) == 30
        assert video.decoded_frames == 30
        assert not video.truncated
        expected = video.info.expected_frames
    # A GIF's duration is summed from the frames it has: it promises nothing.
    assert expected == (None if suffix == ".gif" else 30)


def test_gif_with_merged_frames_is_not_truncated(tmp_path: Path) -> None:
    # Pillow stores a run of identical frames once, with their delays added up.
    frames = moving_square(30)
    frames[5:15] = [frames[5]] * 10
    path = tmp_path / "still.gif"
    write_video(path, frames, fps=30)
    with VideoReader(path) as video:
        assert len(list(video)) == 21
        assert not video.truncated


def test_longer_audio_track_is_not_a_truncation(tmp_path: Path) -> None:
    """The header's duration is the longest track's: 1.5 s of audio, 1 s of video."""
    video_only = tmp_path / "video.mp4"
    write_video(video_only, noise_frames(30), fps=30)
    path = tmp_path / "with-audio.mp4"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(video_only)]
    command += ["-f", "lavfi", "-i", "sine=duration=1.5", "-map", "0:v", "-map", "1:a"]
    command += ["-c:v", "copy", "-c:a", "aac", "-movflags", "+faststart", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    with VideoReader(path) as video:
        assert video.info.expected_frames == 45
        assert len(list(video)) == 30
        assert not video.truncated


@pytest.mark.parametrize("fraction", [0.5, 0.75, 0.99])
def test_truncated_mp4_is_flagged_after_reading(tmp_path: Path, fraction: float) -> None:
    """An MP4 with its index first (``+faststart``) cut short decodes without an error,
    up to the cut: the reader says it came out short."""
    path = cut_video(tmp_path / "clip.mp4", 30, fraction)
    with VideoReader(path) as video:
        assert video.info.expected_frames == 30
        frames = list(video)
        assert 0 < len(frames) < 30
        assert video.decoded_frames == len(frames)
        assert video.truncated
        # Stopping early is not reaching the end: unknown until the end again.
        next(iter(video))
        assert not video.truncated and video.decoded_frames == 1


@pytest.mark.parametrize("suffix", [".webm", ".mkv"])
def test_truncated_matroska_is_flagged(tmp_path: Path, suffix: str) -> None:
    path = cut_video(tmp_path / f"clip{suffix}", 30, 0.6)
    with VideoReader(path) as video:
        assert 0 < len(list(video)) < 30
        assert video.truncated


def test_video_of_unknown_length_is_never_truncated(tmp_path: Path) -> None:
    """A raw H.264 stream has no header that says how long it is."""
    mp4 = tmp_path / "clip.mp4"
    write_video(mp4, noise_frames(30), fps=30)
    raw = tmp_path / "clip.h264"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(mp4)]
    subprocess.run([*command, "-c", "copy", "-f", "h264", str(raw)], check=True)
    raw.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])
    with VideoReader(raw) as video:
        assert video.info.duration is None and video.info.expected_frames is None
        assert 0 < len(list(video)) < 30
        assert not video.truncated


def test_mp4_cut_before_its_first_frame_is_a_video_error(tmp_path: Path) -> None:
    path = cut_video(tmp_path / "clip.mp4", 30, 0.02)
    with pytest.raises(VideoError) as caught:
        list(VideoReader(path))
    message = str(caught.value)
    assert str(path) in message and message.endswith(".") and "\n" not in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_reading_what_is_not_a_regular_file_says_what_it_is(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    cases = [(fifo, "pipe"), (loop, "loop")]
    if Path("/dev/zero").exists():
        cases.append((Path("/dev/zero"), "device"))
    for path, kind in cases:
        with pytest.raises(VideoError, match=kind) as caught:
            VideoReader(path)  # returns at once: nothing is opened
        assert str(path) in str(caught.value)
