"""Video files: MP4/GIF round trips, odd sizes, bad inputs, no half-written outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from depthlens.errors import DepthlensError
from depthlens.io.video import (
    VideoError,
    VideoReader,
    VideoWriter,
    is_video_path,
    write_video,
)
from tests.video import moving_square


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
