"""Video Depth Anything (relative and metric): Depth Anything V2 + a temporal DPT head.

The encoder and the DPT reassemble/fusion/output layers are Depth Anything V2's, reused
from :mod:`depthlens.models.depth_anything` (same official keys under ``pretrained.*`` and
``head.*``). What is new is written here: four temporal "motion modules" (self-attention
along the frame axis at every spatial position) inserted into the DPT head, the
converter of the official checkpoints, and the official windowed inference of a whole
video (32-frame windows overlapping by 10, keyframes carried between windows, a scale
and shift fitted between windows, a linear cross-fade over the overlap) and the official
streaming mode (one frame at a time, attending to cached states of past frames).

Upstream: DepthAnything/Video-Depth-Anything @ 4f5ae23 (CHECKPOINTS.md):
video_depth_anything/video_depth.py (``VideoDepthAnything``, ``infer_video_depth``,
constants ``INFER_LEN``, ``OVERLAP``, ``KEYFRAMES``, ``INTERP_LEN``),
video_depth_anything/video_depth_stream.py (``infer_video_depth_one``, ``gap``) and
run_streaming.py (the streaming mode),
video_depth_anything/dpt_temporal.py (``DPTHeadTemporal``),
video_depth_anything/motion_module/{motion_module,attention}.py (``TemporalModule``,
from AnimateDiff), utils/util.py (``compute_scale_and_shift``,
``get_interpolate_frames``), run.py (``model_configs``, checkpoint names), README.md
(checkpoints, licences).

Facts used (read there, restated):
- The three sizes are DA-V2's encoders and head widths (run.py ``model_configs``).
- The metric checkpoints (``metric_video_depth_anything_vit{s,b,l}.pth``) use the same
  network, with the same final ReLU (no Sigmoid / max depth as in DA-V2 metric); the
  output is depth in metres. The only difference in inference is that the windows are
  not re-aligned (scale 1, shift 0), ``video_depth.py::infer_video_depth``.
- The head applies motion modules to the 3rd and 4th reassembled maps (before the
  3x3 ``layer*_rn`` convolutions) and to the outputs of ``refinenet4`` and
  ``refinenet3``; each module has 8 heads, one transformer block of two temporal
  self-attentions (LayerNorm before each, residual) and a GEGLU feed-forward (x4),
  wrapped in GroupNorm(32, eps 1e-6) -> Linear in ... Linear out + residual. The
  attentions add a sinusoidal position encoding of ``num_frames`` (32) positions,
  stored in the checkpoint as a buffer (``pos_encoder.pe``), to their input.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthlens.models import depth_anything as da
from depthlens.models.hooks import network_input_size
from depthlens.models.spec import IMAGENET_MEAN, IMAGENET_STD, InputPolicy

PATCH_SIZE = da.PATCH_SIZE

# Windowed inference settings, video_depth.py (marked "do not change" upstream).
WINDOW = 32  # INFER_LEN: frames per forward
OVERLAP = 10  # frames shared by consecutive windows
# Slots of the previous window's *input* copied into the first OVERLAP slots of the
# next one: slot 0 (so the very first frame stays in every window), slot 12, and the
# eight last slots (which are the next window's own frames 2..9).
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)
INTERP_LEN = 8  # overlap frames cross-faded between the two windows
ALIGN_LEN = OVERLAP - INTERP_LEN  # slots 0, 1 (keyframes 0 and 12) fit the scale/shift
INPUT_SIZE = 518  # run.py --input_size default
MAX_ASPECT = 1.78  # wider videos get a smaller input size (video_depth.py)
MOTION_ATTENTIONS = 2  # temporal self-attentions per motion module (dpt_temporal.py)

# Streaming settings, video_depth_stream.py: each new frame attends to WINDOW - 1 past
# frames: the first one, the one HISTORY frames back (upstream's ``gap``, derived there
# from the windowed constants) and the RECENT newest ones; the first frame stands in
# for frames before the start.
HISTORY = 2 * (WINDOW - OVERLAP) - 1 - (OVERLAP - INTERP_LEN)  # 41
RECENT = WINDOW - 3  # 29


@dataclass(frozen=True)
class VDAConfig:
    """Architecture of one Video Depth Anything network.

    ``image`` is the Depth Anything V2 part (encoder, reassemble and fusion widths); it
    is always a relative (ReLU) head. ``metric`` marks the metric checkpoints: same
    network, output in metres, windows not re-aligned.
    """

    image: da.DAConfig = field(default_factory=lambda: da.make_config(2, "small"))
    metric: bool = False
    num_frames: int = WINDOW  # temporal_max_len: positions of the position encoding
    motion_heads: int = 8
    norm_groups: int = 32
    ff_mult: int = 4

    def __post_init__(self) -> None:
        if self.image.metric:
            raise ValueError("Video Depth Anything heads end in a ReLU: use a relative DAConfig.")
        widths = (*self.image.out_channels[2:], self.image.features)
        for width in widths:
            if width % self.norm_groups or width % self.motion_heads:
                raise ValueError(
                    f"Motion-module width {width} must divide into {self.norm_groups} groups "
                    f"and {self.motion_heads} heads."
                )


def _make(size: str, metric: bool) -> VDAConfig:
    return VDAConfig(image=da.make_config(2, size), metric=metric)


_SIZES = {"vits": "small", "vitb": "base", "vitl": "large"}

# The network takes clips (B, T, 3, h, w) -> (B, T, h, w) (models/backends): its
# ONNX/OpenVINO exports leave T free, and a static export fixes it at one window. The
# windowed inference runs on any backend's runner; the streaming mode feeds cached
# states back into the torch network (``forward_states``), so it runs in torch only
# (video/stream.py: clip_predictor).
CLIP_FRAMES = WINDOW

# Licences, README.md "LICENSE": Small Apache-2.0, Base/Large CC-BY-NC-4.0. The README
# does not say whether "Small" covers Metric-Video-Depth-Anything-Small as well.
LICENCES = {"vits": "Apache-2.0", "vitb": "CC-BY-NC-4.0", "vitl": "CC-BY-NC-4.0"}

PRESETS: dict[str, VDAConfig] = {
    **{size: _make(name, False) for size, name in _SIZES.items()},
    **{f"metric-{size}": _make(name, True) for size, name in _SIZES.items()},
}

# Official checkpoint file of each preset (run.py: ``{checkpoint_name}_{encoder}.pth``).
OFFICIAL_FILES = {
    **{size: f"video_depth_anything_{size}.pth" for size in _SIZES},
    **{f"metric-{size}": f"metric_video_depth_anything_{size}.pth" for size in _SIZES},
}


# --------------------------------------------------------------------------------------
# Motion modules
# --------------------------------------------------------------------------------------


def sinusoid_table(length: int, dim: int) -> Tensor:
    """(1, length, dim) sin/cos position table (even channels sin, odd cos, base 1e4), the
    initial value of the official ``PositionalEncoding.pe`` buffer."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-np.log(10000.0) / dim))
    table = torch.zeros(1, length, dim)
    table[0, :, 0::2] = torch.sin(position * freq)
    table[0, :, 1::2] = torch.cos(position * freq)
    return table


class TemporalAttention(nn.Module):
    """Multi-head self-attention along frames: (N, t, C) -> (N, t, C).

    Adds the position table to its input first; query/key/value have no bias, the
    output projection has one (AnimateDiff's ``CrossAttention`` defaults). With
    ``past`` (N, P, C), the inputs this attention had for P earlier frames, the t
    frames take positions P.. and attend to all P + t frames (the streaming mode).
    """

    def __init__(self, dim: int, heads: int, num_frames: int) -> None:
        super().__init__()
        self.heads = heads
        inner = heads * (dim // heads)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.register_buffer("pos_embed", sinusoid_table(num_frames, dim))
        self.pos_embed: Tensor

    def forward(self, x: Tensor, past: Tensor | None = None) -> Tensor:
        frames = x.shape[1]
        seen = x if past is None else torch.cat([past, x], dim=1)
        total = seen.shape[1]
        if total > self.pos_embed.shape[1]:
            raise ValueError(f"{total} frames exceed the {self.pos_embed.shape[1]} positions.")
        seen = seen + self.pos_embed[:, :total].to(x.dtype)
        n = x.shape[0]

        def split(t: Tensor) -> Tensor:
            return t.reshape(n, t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.to_q(seen[:, total - frames :])),
            split(self.to_k(seen)),
            split(self.to_v(seen)),
        )
        return self.to_out(out.transpose(1, 2).reshape(n, frames, -1))


class MotionModule(nn.Module):
    """Temporal transformer on a (B, C, T, H, W) map, residual around the whole module.

    One block: ``attentions`` self-attentions along T, each pre-LayerNorm with a
    residual, then a pre-LayerNorm GEGLU feed-forward (``ff_in`` gives value and gate,
    exact GELU on the gate) with a residual.

    ``forward`` also returns what the streaming mode caches per frame: each attention's
    (normalised) input, (B*H*W, T, inner), as ``motion_module.py`` returns them; given
    back as ``past`` (one tensor per attention, earlier frames along dim 1), the T
    frames attend to those frames as well.
    """

    def __init__(self, dim: int, config: VDAConfig, attentions: int = MOTION_ATTENTIONS) -> None:
        super().__init__()
        heads = config.motion_heads
        inner = heads * (dim // heads)
        self.norm = nn.GroupNorm(config.norm_groups, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, inner)
        self.attentions = nn.ModuleList(
            TemporalAttention(inner, heads, config.num_frames) for _ in range(attentions)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(inner) for _ in range(attentions))
        self.ff_norm = nn.LayerNorm(inner)
        self.ff_in = nn.Linear(inner, 2 * config.ff_mult * inner)
        self.ff_out = nn.Linear(config.ff_mult * inner, inner)
        self.proj_out = nn.Linear(inner, dim)

    def forward(
        self, x: Tensor, past: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        hidden = self.norm(frames).permute(0, 2, 3, 1).reshape(b, t, h * w, c)
        # tokens: one sequence of t frames per (batch, position)
        hidden = self.proj_in(hidden).transpose(1, 2).reshape(b * h * w, t, -1)
        states = []
        for i, (attention, norm) in enumerate(zip(self.attentions, self.norms, strict=True)):
            states.append(norm(hidden))
            hidden = hidden + attention(states[-1], None if past is None else past[i])
        value, gate = self.ff_in(self.ff_norm(hidden)).chunk(2, dim=-1)
        hidden = hidden + self.ff_out(value * F.gelu(gate))
        hidden = self.proj_out(hidden).reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)
        out = hidden.reshape(b * t, c, h, w) + frames
        return out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4), states


# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------


class VideoDepthAnythingNetwork(da.DepthAnythingNetwork):
    """Video Depth Anything: (B, T, 3, h, w) ImageNet-normalised -> (B, T, h, w).

    h and w are multiples of 14, T at most ``config.num_frames``. Relative models give
    affine-invariant inverse depth (>= 0), metric models metres (>= 0). The DA-V2 parts
    live under ``model.*`` exactly as in :class:`DepthAnythingNetwork`; the motion
    modules under ``motion_modules.{0..3}``.
    """

    def __init__(self, config: VDAConfig) -> None:
        super().__init__(config.image)
        self.video_config = config
        widths = (config.image.out_channels[2], config.image.out_channels[3])
        self.motion_modules = nn.ModuleList(
            MotionModule(width, config) for width in (*widths, *(2 * (config.image.features,)))
        )

    def _temporal(
        self, index: int, x: Tensor, frames: int, past: Sequence[Tensor] | None, keep: bool
    ) -> tuple[Tensor, list[Tensor]]:
        """Run motion module ``index`` on a (B*T, C, H, W) map; its states if ``keep``
        (else they are freed at once: a whole window's would be a lot of memory)."""
        if past is not None:
            past = past[index * MOTION_ATTENTIONS : (index + 1) * MOTION_ATTENTIONS]
        # reshape, not unflatten: an ONNX trace of unflatten fixes the frame count
        video = x.reshape(-1, frames, *x.shape[1:]).transpose(1, 2)
        out, states = self.motion_modules[index](video, past)
        return out.transpose(1, 2).flatten(0, 1), states if keep else []

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, 3, h, w) normalised frames -> (B, T, h, w) depth."""
        if x.dim() == 4:  # (B, 3, h, w): photos, each a one-frame clip
            return self.forward(x[:, None])[:, 0]
        return self._run(x, None, keep=False)[0]

    def forward_states(
        self, x: Tensor, past: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """(B, T, 3, h, w) normalised frames -> (B, T, h, w) depth and the motion
        modules' states: 8 tensors (module 0 attention 0, module 0 attention 1, ...),
        each (B * positions, T, C).

        With ``past`` (the same 8 tensors for P earlier frames, P + T at most
        ``num_frames``) the frames attend to those frames too: the streaming mode
        (``video_depth_stream.py``). The order follows ``DPTHeadTemporal.forward``; the
        official micro-batching of the last two fusion layers (4 frames at a time)
        only saves memory and is not done.
        """
        return self._run(x, past, keep=True)

    def _run(
        self, x: Tensor, past: Sequence[Tensor] | None, keep: bool
    ) -> tuple[Tensor, list[Tensor]]:
        batch, frames, _, height, width = x.shape
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"Input size {height}x{width} is not a multiple of {PATCH_SIZE}.")
        ph, pw = height // PATCH_SIZE, width // PATCH_SIZE
        model = self.model
        features = model.backbone(x.flatten(0, 1)).feature_maps
        maps = model.neck.reassemble_stage(list(features), ph, pw)
        maps[2], states0 = self._temporal(0, maps[2], frames, past, keep)
        maps[3], states1 = self._temporal(1, maps[3], frames, past, keep)
        rn = [conv(m) for conv, m in zip(model.neck.convs, maps, strict=True)]
        fusion = model.neck.fusion_stage.layers  # [0] is refinenet4, [3] refinenet1
        path = fusion[0](rn[3], size=rn[2].shape[2:])
        path, states2 = self._temporal(2, path, frames, past, keep)
        path = fusion[1](path, rn[2], size=rn[1].shape[2:])
        path, states3 = self._temporal(3, path, frames, past, keep)
        path = fusion[2](path, rn[1], size=rn[0].shape[2:])
        path = fusion[3](path, rn[0])
        head = model.head
        depth = head.conv1(path)
        depth = F.interpolate(depth, (height, width), mode="bilinear", align_corners=True)
        depth = head.activation2(head.conv3(head.activation1(head.conv2(depth))))
        # upstream resizes to (h, w) again (identity here) and applies a second ReLU
        depth = depth.reshape(batch, frames, height, width)
        return depth, [*states0, *states1, *states2, *states3]


def build_network(config: VDAConfig) -> VideoDepthAnythingNetwork:
    """A randomly initialised network of ``config`` (nothing is downloaded)."""
    return VideoDepthAnythingNetwork(config)


# --------------------------------------------------------------------------------------
# Official checkpoints -> our keys
# --------------------------------------------------------------------------------------

_MOTION = re.compile(r"head\.motion_modules\.(\d)\.temporal_transformer\.(.+)")
_BLOCK = r"transformer_blocks\.0\."
# Official motion-module key suffix (after temporal_transformer.) -> ours.
_MOTION_RENAMES: list[tuple[str, str]] = [
    (_BLOCK + r"attention_blocks\.(\d)\.to_out\.0\.(weight|bias)", r"attentions.\1.to_out.\2"),
    (_BLOCK + r"attention_blocks\.(\d)\.pos_encoder\.pe", r"attentions.\1.pos_embed"),
    (_BLOCK + r"attention_blocks\.(\d)\.(to_[qkv])\.weight", r"attentions.\1.\2.weight"),
    (_BLOCK + r"norms\.(\d)\.(weight|bias)", r"norms.\1.\2"),
    (_BLOCK + r"ff\.net\.0\.proj\.(weight|bias)", r"ff_in.\1"),
    (_BLOCK + r"ff\.net\.2\.(weight|bias)", r"ff_out.\1"),
    (_BLOCK + r"ff_norm\.(weight|bias)", r"ff_norm.\1"),
    (r"(norm|proj_in|proj_out)\.(weight|bias)", r"\1.\2"),
]


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], config: VDAConfig
) -> dict[str, Tensor]:
    """Official ``[metric_]video_depth_anything_vit{s,b,l}.pth`` keys -> ours.

    ``pretrained.*`` and ``head.*`` (the DA-V2 part; DA-V2 calls the head
    ``depth_head``) go through :func:`depth_anything.convert_official_state_dict`;
    ``head.motion_modules.*`` are renamed here. Unmatched keys keep their name, so a
    strict load reports them.
    """
    image: dict[str, Tensor] = {}
    converted: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        if match := _MOTION.fullmatch(key):
            index, rest = match.groups()
            for pattern, target in _MOTION_RENAMES:
                if re.fullmatch(pattern, rest):
                    converted[f"motion_modules.{index}.{re.sub(pattern, target, rest)}"] = tensor
                    break
            else:
                converted[key] = tensor
        elif key.startswith("head."):
            image["depth_head." + key.removeprefix("head.")] = tensor
        else:
            image[key] = tensor
    converted.update(da.convert_official_state_dict(image, config.image))
    return converted


def load_official(state_dict: Mapping[str, Tensor], config: VDAConfig) -> VideoDepthAnythingNetwork:
    """A network of ``config`` with an official checkpoint loaded strictly."""
    network = build_network(config)
    network.load_state_dict(convert_official_state_dict(state_dict, config), strict=True)
    return network.eval()


# --------------------------------------------------------------------------------------
# Windowed inference of a whole video
# --------------------------------------------------------------------------------------


def input_size_for(height: int, width: int, input_size: int = INPUT_SIZE) -> tuple[int, int]:
    """The network (h, w) for (height, width) frames, as ``infer_video_depth``.

    Beyond a 1.78 aspect ratio the target side shrinks to ``int(size * 1.777 / ratio)``,
    rounded to a multiple of 14; then DA-V2's Resize (lower bound, keep aspect,
    multiples of 14), with depthlens' bounds for extreme shapes (models/hooks.py).
    """
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT:
        input_size = round(int(input_size * 1.777 / ratio) / PATCH_SIZE) * PATCH_SIZE
    policy = InputPolicy(
        size=(input_size, input_size),
        method="lower_bound",
        keep_aspect=True,
        multiple_of=PATCH_SIZE,
        interpolation="cubic",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    return network_input_size(height, width, policy)


def prepare_frame(rgb: np.ndarray, size: tuple[int, int]) -> Tensor:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32: /255 in float32 (as upstream, unlike
    DA-V2's float64), bicubic OpenCV resize, ImageNet normalisation."""
    image: np.ndarray = rgb.astype(np.float32) / 255.0
    if image.shape[:2] != size:
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    normalised = (image - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1), np.float32))


def fit_scale_shift(pred: np.ndarray, target: np.ndarray) -> tuple[np.float32, np.float32]:
    """Least-squares s, t with s * pred + t ~ target (all pixels), with float32 sums as
    utils/util.py::compute_scale_and_shift_full; (1, 0) when the system is singular."""
    pred = pred.astype(np.float32)
    target = target.astype(np.float32)
    a00, a01, a11 = np.sum(pred * pred), np.sum(pred), np.float32(pred.size)
    b0, b1 = np.sum(pred * target), np.sum(target)
    det = a00 * a11 - a01 * a01
    if det == 0:
        return np.float32(1.0), np.float32(0.0)
    return np.float32((a11 * b0 - a01 * b1) / det), np.float32((-a01 * b0 + a00 * b1) / det)


def _blend_weights(count: int) -> list[float]:
    """Weights of the later window over ``count`` frames, 0 to 1 in equal steps (the
    steps are multiples of 1 / (count - 1), as get_interpolate_frames)."""
    step = 1.0 / (count - 1)
    return [0.0] + [i * step for i in range(1, count - 1)] + [1.0]


def _windows(frames: Iterable[np.ndarray]) -> Iterator[tuple[list[np.ndarray], int, bool]]:
    """(32 frames, how many are real, whether it is the last window) per window.

    Windows start every 22 frames, one at every such frame of the video; the last is
    padded with copies of the video's last frame (as upstream pads its frame list).
    A next window exists when this one holds more than 22 real frames.
    """
    step = WINDOW - OVERLAP
    it = iter(frames)
    buffer: list[np.ndarray] = []
    while True:
        for frame in it:
            buffer.append(frame)
            if len(buffer) == WINDOW:
                break
        if not buffer:
            return
        real = len(buffer)
        last = real <= step
        yield buffer + [buffer[-1]] * (WINDOW - real), real, last
        if last:
            return
        buffer = buffer[step:]


# A clip network on any backend: (B, T, 3, h, w) float32 -> (B, T, h, w), such as the
# torch network or an ONNX Runtime/OpenVINO runner of its export (models/backends).
ClipNetwork = Callable[[Tensor], Tensor]


def iter_video_depth(
    network: VideoDepthAnythingNetwork | ClipNetwork,
    frames: Iterable[np.ndarray],
    input_size: int = INPUT_SIZE,
    *,
    metric: bool | None = None,
) -> Iterator[np.ndarray]:
    """(H, W) float32 depth of every frame, in order, for (H, W, 3) uint8 RGB frames.

    ``network`` is the torch network (its clips go to its device and dtype) or any
    ``ClipNetwork`` on CPU float32 clips, such as a runner of another backend; then
    ``metric`` (whether it is a metric model) must be given, which for the torch
    network defaults to its config's.

    The official ``infer_video_depth`` (its float32 path) as a generator holding at most
    one window of frames and depths. Per window of 32 frames starting every 22 frames:
    the first 10 input slots are replaced by the previous input's KEYFRAMES slots; the
    depths are resized to (H, W) (bilinear, align_corners=True). For a relative model,
    a least-squares scale and shift maps slots 0-1 onto the aligned depths of
    keyframes 0 and 12 (the first window is the reference; results clipped at 0); the
    8 frames shared with the previous window cross-fade linearly from it to this one;
    slots 10-31 are new frames. Metric models use scale 1 and shift 0.
    """
    parameter = next(network.parameters()) if isinstance(network, nn.Module) else None
    if metric is None:
        metric = cast(VideoDepthAnythingNetwork, network).video_config.metric
    size = (0, 0)
    frame_size = (0, 0)
    keyframe_inputs: Tensor | None = None
    refs: list[np.ndarray] = []
    pending: list[np.ndarray] = []  # aligned depths of frames emitted, emitted + 1, ...
    emitted = 0
    start = 0  # first frame of the current window
    for window, real, last in _windows(frames):
        first = keyframe_inputs is None
        if first:
            frame_size = (window[0].shape[0], window[0].shape[1])
            size = input_size_for(*frame_size, input_size)
        inputs = torch.stack([prepare_frame(f, size) for f in window])
        if keyframe_inputs is not None:
            inputs[:OVERLAP] = keyframe_inputs
        keyframe_inputs = inputs[list(KEYFRAMES)]
        clip = (
            inputs[None]
            if parameter is None
            else inputs[None].to(parameter.device, parameter.dtype)
        )
        with torch.no_grad():
            out = network(clip).float()
        out = F.interpolate(out[0][:, None], frame_size, mode="bilinear", align_corners=True)
        depths = [d[0].cpu().numpy() for d in out]
        if first:
            pending = depths
            refs = [depths[k] for k in KEYFRAMES[:ALIGN_LEN]]
        else:
            if metric:
                scale, shift = np.float32(1.0), np.float32(0.0)
            else:
                scale, shift = fit_scale_shift(
                    np.concatenate(depths[:ALIGN_LEN]), np.concatenate(refs)
                )
            aligned = [np.maximum(d * scale + shift, np.float32(0)) for d in depths]
            posts = aligned[ALIGN_LEN:OVERLAP]
            pending[-INTERP_LEN:] = [
                pre * (1 - w) + post * w
                for pre, post, w in zip(
                    pending[-INTERP_LEN:], posts, _blend_weights(INTERP_LEN), strict=True
                )
            ]
            pending += aligned[OVERLAP:]
            refs = [refs[0], *(aligned[k] for k in KEYFRAMES[1:ALIGN_LEN])]
        # frames of the video (start + real of them so far) not due to change again
        remaining = start + real - emitted
        count = remaining if last else min(len(pending) - INTERP_LEN, remaining)
        yield from pending[:count]
        emitted += count
        pending = pending[count:]
        start += WINDOW - OVERLAP


def predict_clip(
    network: VideoDepthAnythingNetwork, frames: np.ndarray, input_size: int = INPUT_SIZE
) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB video -> (T, H, W) float32 depth (see iter_video_depth)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}.")
    if len(frames) == 0:
        return np.zeros((0, *frames.shape[1:3]), np.float32)
    return np.stack(list(iter_video_depth(network, frames, input_size))).astype(np.float32)


# --------------------------------------------------------------------------------------
# Streaming inference, one frame at a time
# --------------------------------------------------------------------------------------


class VideoDepthStream:
    """The official streaming mode (``video_depth_stream.py::infer_video_depth_one``):
    each frame's depth as soon as it arrives, from the frame itself and the motion
    modules' cached states of past frames.

    Call it with (H, W, 3) uint8 RGB frames of one video, in order; it returns each
    frame's (H, W) float32 depth (relative inverse depth or metres, as the network).
    Frame n attends to the first frame, frame n - 41 and frames n - 29 .. n - 1 (the
    first frame standing in for those before it), at positions 0..31. It holds the
    states of the first frame and the 41 last ones (``history``), whatever the length
    of the video: for Small at 518 x 686, about 9 MB a frame.

    Both kinds of checkpoint run the same way: upstream's streaming mode never
    re-aligns (there are no windows), so metric models need nothing different. This
    is the float32 path (``--fp32``); upstream defaults to autocast.
    """

    def __init__(self, network: VideoDepthAnythingNetwork, input_size: int = INPUT_SIZE) -> None:
        self.network = network
        self.input_size = input_size
        self.first: list[Tensor] | None = None
        self.history: deque[list[Tensor]] = deque(maxlen=HISTORY)
        self._frame_size = (0, 0)
        self._size = (0, 0)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame_size = (frame.shape[0], frame.shape[1])
        if self.first is None:
            self._frame_size = frame_size
            self._size = input_size_for(*frame_size, self.input_size)
        elif frame_size != self._frame_size:
            raise ValueError(f"Frame of {frame_size} in a video of {self._frame_size} frames.")
        parameter = next(self.network.parameters())
        x = prepare_frame(frame, self._size)[None, None].to(parameter.device, parameter.dtype)
        past = None
        if self.first is not None:
            frames = [self.first, self.history[0], *list(self.history)[-RECENT:]]
            past = [torch.cat(states, dim=1) for states in zip(*frames, strict=True)]
        with torch.no_grad():
            depth, states = self.network.forward_states(x, past)
        if self.first is None:
            self.first = states
            self.history.extend([states] * HISTORY)
        else:
            self.history.append(states)
        depth = F.interpolate(depth.float(), frame_size, mode="bilinear", align_corners=True)
        return depth[0, 0].cpu().numpy()


def iter_video_depth_streaming(
    network: VideoDepthAnythingNetwork,
    frames: Iterable[np.ndarray],
    input_size: int = INPUT_SIZE,
) -> Iterator[np.ndarray]:
    """(H, W) float32 depth of every frame, in order, each yielded before the next frame
    is read: the official streaming mode (see :class:`VideoDepthStream`)."""
    stream = VideoDepthStream(network, input_size)
    for frame in frames:
        yield stream(frame)
