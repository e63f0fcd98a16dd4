"""Video Depth Anything: key conversion, strict loading, the network and the windowed
video inference against goldens of the official code (tests/expected/README.md).

The checkpoint is random in the full official vits layout (tests/checkpoints.py,
keys_vda_vits.txt), rebuilt bit-for-bit here, so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from depthlens.models import video_depth_anything as vda
from tests.checkpoints import official_checkpoint, read_key_table

EXPECTED = Path(__file__).resolve().parent.parent / "expected"
GOLDEN = EXPECTED / "video-depth-anything-small_official.npz"
# Official key counts (buffers included: the 4 x 2 position tables ``pos_encoder.pe``).
KEY_COUNTS = {"vits": 351, "vitb": 351, "vitl": 519}


@pytest.fixture(scope="module")
def official_state() -> dict[str, Tensor]:
    return official_checkpoint("vda_vits", seed=0)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


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
    from depthlens.models import depth_anything as da

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
