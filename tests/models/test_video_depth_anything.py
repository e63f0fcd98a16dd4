"""Video Depth Anything: key conversion, strict loading, the network, and the windowed
and streaming video inference against goldens of the official code
(tests/expected/README.md).

The checkpoint is random in the full official vits layout (tests/checkpoints.py,
keys_vda_vits.txt), rebuilt bit-for-bit here, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from depthlens.models import depth_anything as da
from depthlens.models import video_depth_anything as vda
from tests.checkpoints import official_checkpoint, read_key_table
from tests.models.test_backends import TINY_DA, random_weights

EXPECTED = Path(__file__).resolve().parent.parent / "expected"
GOLDEN = EXPECTED / "video-depth-anything-small_official.npz"
STREAMING_GOLDEN = EXPECTED / "video-depth-anything-small_streaming_official.npz"
# Official key counts (buffers included: the 4 x 2 position tables ``pos_encoder.pe``).
KEY_COUNTS = {"vits": 351, "vitb": 351, "vitl": 519}


@pytest.fixture(scope="module")
def official_state() -> dict[str, Tensor]:
    return official_checkpoint("vda_vits", seed=0)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def streaming_golden() -> dict[str, np.ndarray]:
    with np.load(STREAMING_GOLDEN) as data:
        return {key: data[key] for key in data.files}


# A tiny random network for the backend tests (test_backends_onnx/openvino): a 4 x 4
# position grid, motion modules of 32, 32, 16 and 16 channels in 8 groups and 2 heads.
TINY = vda.VDAConfig(image=TINY_DA, motion_heads=2, norm_groups=8)


def tiny_video_depth_anything(seed: int = 0) -> vda.VideoDepthAnythingNetwork:
    """``TINY`` with deterministic random weights (tests/checkpoints)."""
    return random_weights(vda.build_network(TINY), seed)


def _clip() -> np.ndarray:
    """The golden clip: 40 random frames of 28 x 42 (network input 56 x 84, two windows)."""
    return np.random.default_rng(0).integers(0, 256, (40, 28, 42, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", ["vits", "vitb", "vitl"])
def test_converter_covers_official_layout(size: str) -> None:
    table = read_key_table(f"vda_{size}")
    assert len(table) == KEY_COUNTS[size]
    config = vda.PRESETS[size]
    with torch.device("meta"):
        ours = vda.build_network(config).state_dict()
        official = {k: torch.empty(shape) for k, shape in table.items()}
    converted = vda.convert_official_state_dict(official, config)
    assert set(converted) == set(ours)
    for key, tensor in converted.items():
        assert tensor.shape == ours[key].shape, key


def test_strict_load_and_network_parity(
    official_state: dict[str, Tensor], golden: dict[str, np.ndarray]
) -> None:
    network = vda.load_official(official_state, vda.PRESETS["vits"])
    x = torch.randn(1, 4, 3, 56, 84, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        depth = network(x)[0].numpy()
    expected = golden["net"]
    assert depth.shape == expected.shape == (4, 56, 84)
    span = float(expected.max() - expected.min())
    assert np.abs(depth - expected).max() <= 1e-4 * span


def test_strict_load_rejects_missing_motion_key(official_state: dict[str, Tensor]) -> None:
    state = dict(official_state)
    del state["head.motion_modules.2.temporal_transformer.proj_out.bias"]
    with pytest.raises(RuntimeError, match=r"motion_modules\.2\.proj_out\.bias"):
        vda.load_official(state, vda.PRESETS["vits"])


@pytest.mark.parametrize(("preset", "key"), [("vits", "clip"), ("metric-vits", "metric_clip")])
def test_windowed_inference_parity(
    official_state: dict[str, Tensor], golden: dict[str, np.ndarray], preset: str, key: str
) -> None:
    torch.manual_seed(0)
    network = vda.load_official(official_state, vda.PRESETS[preset])
    depth = vda.predict_clip(network, _clip(), input_size=56)
    expected = golden[key]
    assert depth.shape == expected.shape == (40, 28, 42)
    assert depth.dtype == np.float32
    span = float(expected.max() - expected.min())
    assert np.abs(depth - expected).max() <= 1e-4 * span


def _long_clip() -> np.ndarray:
    """50 frames: past frame 42, the streaming mode's look-back of 41 frames reaches
    real frames instead of the first one."""
    return np.random.default_rng(1).integers(0, 256, (50, 28, 42, 3), dtype=np.uint8)


@pytest.mark.parametrize(("key", "count"), [("clip", 12), ("long_clip", 50)])
def test_streaming_inference_parity(
    official_state: dict[str, Tensor],
    streaming_golden: dict[str, np.ndarray],
    key: str,
    count: int,
) -> None:
    """The first ``count`` frames (a frame's depth depends on earlier frames only, so a
    prefix of the windowed golden's clip is enough there; all 50 of the long one)."""
    network = vda.load_official(official_state, vda.PRESETS["vits"])
    frames = {"clip": _clip, "long_clip": _long_clip}[key]()[:count]
    depth = np.stack(list(vda.iter_video_depth_streaming(network, frames, input_size=56)))
    expected = streaming_golden[key][:count]
    assert depth.shape == expected.shape == (count, 28, 42)
    assert depth.dtype == np.float32
    span = float(expected.max() - expected.min())
    assert np.abs(depth - expected).max() <= 1e-4 * span


def test_streaming_first_frame_is_the_network_alone(official_state: dict[str, Tensor]) -> None:
    """No past yet: the first frame's depth is a one-frame clip through the network."""
    network = vda.load_official(official_state, vda.PRESETS["metric-vits"])
    frame = _clip()[0]
    streamed = vda.VideoDepthStream(network, input_size=56)(frame)
    with torch.no_grad():
        alone = network(vda.prepare_frame(frame, (56, 84))[None, None])
    alone = torch.nn.functional.interpolate(alone, (28, 42), mode="bilinear", align_corners=True)
    assert np.abs(streamed - alone[0, 0].numpy()).max() <= 1e-6 * float(alone.max())


class _StateNumberNetwork(nn.Module):
    """Stands in for the network in the streaming mode: frame k's 8 states are the
    number k, and each call records the frame numbers it was given as ``past``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.seen: list[list[int]] = []

    def forward_states(self, x: Tensor, past: list[Tensor] | None) -> tuple[Tensor, list[Tensor]]:
        if past is not None:
            assert all(torch.equal(state, past[0]) for state in past)
            self.seen.append([int(v) for v in past[0][0, :, 0]])
        number = torch.full((1, 1, 1), float(len(self.seen) if past is not None else 0))
        return x.mean(dim=2) + self.weight, [number.clone() for _ in range(8)]


def test_streaming_attends_to_the_official_frames_from_a_fixed_history() -> None:
    """Frame n sees frame 0, frame n - 41 and frames n - 29 .. n - 1 (frame 0 standing
    in before the start), each depth comes before the next frame is read, and the
    cache stops growing at the first frame's states and 41 others."""
    fake = _StateNumberNetwork()
    network = cast(vda.VideoDepthAnythingNetwork, fake)
    read = 0

    def frames() -> Iterator[np.ndarray]:
        nonlocal read
        for _ in range(60):
            read += 1
            yield np.zeros((14, 14, 3), np.uint8)

    stream = vda.VideoDepthStream(network, input_size=14)
    held: list[int] = []
    for done, frame in enumerate(frames(), start=1):
        assert stream(frame).shape == (14, 14)
        assert read == done
        states = {id(t) for t in stream.first or ()}
        states |= {id(t) for entry in stream.history for t in entry}
        held.append(len(states))
    for n, past in enumerate(fake.seen, start=1):
        assert past == [0, max(n - 41, 0), *(max(n - 29 + i, 0) for i in range(29))], n
    assert held[0] == 8 and held[10] == 8 * 11
    assert held[41:] == [8 * 42] * 19  # 8 states per frame, 42 frames
    read = 0
    next(vda.iter_video_depth_streaming(network, frames(), input_size=14))
    assert read == 1


def test_streaming_rejects_a_new_frame_size() -> None:
    network = cast(vda.VideoDepthAnythingNetwork, _StateNumberNetwork())
    stream = vda.VideoDepthStream(network, input_size=14)
    stream(np.zeros((14, 14, 3), np.uint8))
    with pytest.raises(ValueError, match="Frame of"):
        stream(np.zeros((14, 28, 3), np.uint8))


class _FrameIndexNetwork(nn.Module):
    """Stands in for the network: every frame's depth is its input's mean + 10."""

    def __init__(self, metric: bool) -> None:
        super().__init__()
        self.video_config = vda.VDAConfig(metric=metric)
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=2) + 10 + self.weight


@pytest.mark.parametrize("length", [1, 10, 22, 23, 32, 33, 44, 45, 76])
def test_window_bookkeeping_yields_every_frame_once(length: int) -> None:
    frames = np.zeros((length, 14, 14, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(length) * 3 % 256)[:, None, None].astype(np.uint8)
    network = cast(vda.VideoDepthAnythingNetwork, _FrameIndexNetwork(metric=True))
    depths = list(vda.iter_video_depth(network, iter(list(frames)), input_size=14))
    assert len(depths) == length
    assert all(d.shape == (14, 14) for d in depths)
    # a metric model with a per-frame network: frames outside the cross-fades are exact
    plain = vda.predict_clip(network, frames[:1], input_size=14)[0]
    assert np.allclose(depths[0], plain)


def test_fit_scale_shift_recovers_affine_map() -> None:
    pred = np.linspace(0.5, 3.0, 200, dtype=np.float32)
    scale, shift = vda.fit_scale_shift(pred, 2.5 * pred - 0.75)
    assert scale == pytest.approx(2.5, rel=1e-4)
    assert shift == pytest.approx(-0.75, abs=1e-4)


def test_input_size_rule() -> None:
    assert vda.input_size_for(28, 42, 56) == (56, 84)
    assert vda.input_size_for(480, 640) == (518, 686)
    # beyond 16:9 the target side shrinks: int(518 * 1.777 / 2.5) = 368 -> 364
    assert vda.input_size_for(400, 1000) == (364, 910)


def test_config_rejects_metric_da_head() -> None:

    with pytest.raises(ValueError, match="ReLU"):
        vda.VDAConfig(image=da.make_config(2, "small", metric=True, max_depth=20.0))


def test_a_video_goes_through_the_windows_and_skips_the_stabiliser(
    official_state: dict[str, Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``predict_video`` with the zoo row: the family's windowed inference on the decoded
    frames (two windows), not frame-by-frame prediction, and no stabiliser."""
    import json
    from functools import partial

    import depthlens
    from depthlens.io.video import VideoReader, VideoWriter
    from depthlens.video.stream import predict_video

    video = tmp_path / "clip.mp4"
    with VideoWriter(video, 10.0) as writer:
        for frame in _clip():
            writer.write(frame)
    with VideoReader(video) as reader:
        decoded = np.stack(list(reader))
    weights = tmp_path / "video_depth_anything_vits.pth"
    torch.save(official_state, weights)
    estimator = depthlens.load_model("video-depth-anything-small", weights)
    windows = vda.iter_video_depth
    monkeypatch.setattr(vda, "iter_video_depth", partial(windows, input_size=56))  # tiny
    written = predict_video(estimator, video, tmp_path / "out", lossless="npz", batch_size=6)
    depth = np.concatenate(
        [np.load(chunk)["depth"] for chunk in sorted((tmp_path / "out").glob("clip-depth-chunk*"))]
    )
    expected = np.stack(list(windows(estimator.network, decoded, 56)))
    assert written.frames == len(decoded) == 40
    span = float(expected.max() - expected.min())
    assert span > 0 and np.abs(depth - expected).max() <= 1e-6 * span
    sidecar = json.loads(written.sidecar.read_text())
    assert sidecar["stabilization"]["enabled"] is False


def test_cli_video_mode_streaming_streams_the_video(
    official_state: dict[str, Tensor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``depthlens predict VIDEO --video-mode streaming``: the depth files hold the
    streaming mode's depth of the decoded frames."""
    from functools import partial

    from depthlens.io.video import VideoReader, VideoWriter
    from tests.cli import run_cli

    video = tmp_path / "clip.mp4"
    with VideoWriter(video, 10.0) as writer:
        for frame in _clip()[:3]:
            writer.write(frame)
    with VideoReader(video) as reader:
        decoded = np.stack(list(reader))
    weights = tmp_path / "video_depth_anything_vits.pth"
    torch.save(official_state, weights)
    streaming = vda.iter_video_depth_streaming
    monkeypatch.setattr(vda, "iter_video_depth_streaming", partial(streaming, input_size=56))
    model = ("-m", "video-depth-anything-small", "--weights", weights)
    options = ("--lossless", "npz", "--video-mode", "streaming")
    code, _, err = run_cli(["predict", video, *model, "-o", tmp_path / "out", *options], capsys)
    assert code == 0, err
    depth = np.load(tmp_path / "out" / "clip-depth-chunk0000.npz")["depth"]
    network = vda.load_official(official_state, vda.PRESETS["vits"])
    expected = np.stack(list(streaming(network, decoded, 56)))
    assert depth.shape == expected.shape == (3, 28, 42)
    span = float(expected.max() - expected.min())
    assert span > 0 and np.abs(depth - expected).max() <= 1e-5 * span


@pytest.mark.parametrize(("size", "name"), [("vits", "small"), ("vitb", "base"), ("vitl", "large")])
def test_zoo_parameters_are_the_official_checkpoints(size: str, name: str) -> None:
    """The zoo's count is the official tensors' (less the position tables, which are
    buffers), and our network has those less DINOv2's unused mask token."""
    from depthlens.models.registry import MODELS

    table = read_key_table(f"vda_{size}")
    official = sum(int(np.prod(shape)) for key, shape in table.items() if "pos_encoder" not in key)
    with torch.device("meta"):
        network = vda.build_network(vda.PRESETS[size])
    ours = sum(p.numel() for p in network.parameters())
    assert official - ours == int(np.prod(table["pretrained.mask_token"]))
    for metric in ("", "metric-"):
        assert MODELS[f"video-depth-anything-{metric}{name}"].params_millions == round(
            official / 1e6, 1
        )
