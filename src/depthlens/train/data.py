"""Training data: sources, per-sample augmentation, and weighted mixing of sources.

A training run draws an endless stream of samples. Sample ``k`` of the stream is a pure
function of ``(config.seed, k)``: which source it comes from (by the sources' weights),
which item or synthetic seed of that source, and every augmentation parameter are drawn
from a random generator seeded with ``(seed, k)``. So the stream does not depend on the
number of DataLoader workers or processes, a resumed run continues it exactly, and under
``torchrun`` each process reads its own share of every step's indices
(:class:`StepSampler`).

Each sample is a dict of tensors, at ``input_size`` × ``input_size`` pixels (S):

=============  ==========  ==========================================================
``image``      (3, S, S)   float32 RGB normalised with ImageNet mean and std, as the
                           MiDaS-small family expects (``models.spec.IMAGENET_*``)
``depth``      (S, S)      float32 depth in meters (canonical-camera depth when metric
                           training is on); 0 where invalid or unknown (pseudo labels)
``valid``      (S, S)      bool, True where the target is known
``disparity``  (S, S)      float32 relative-training target: ``1 / depth`` for labelled
                           sources, the teacher's relative inverse depth for pseudo
                           labels; 0 where invalid (and there: far away, for sources
                           whose invalid pixels are sky, ``invalid_is_far``)
``disparity_valid`` (S, S) bool, where ``disparity`` is a target: ``valid``, plus the
                           invalid pixels of ``invalid_is_far`` sources
``intrinsics`` (4,)        float32 ``(fx, fy, cx, cy)`` in pixels of the S × S image
``has_depth``  ()          bool, False for pseudo labels (no metric depth)
``source``     ()          int64 index of the source in ``config.data``
=============  ==========  ==========================================================

Pixel coordinates are continuous with the origin at the top-left corner of the image
(:mod:`depthlens.geometry.camera`): pixel ``(row, col)`` covers ``[col, col + 1)`` and
has its centre at ``col + 0.5``. In that convention a crop starting at column ``x0``
moves the principal point to ``cx - x0``, a resize by ``s`` multiplies ``fx`` and
``cx`` by ``s`` (OpenCV's resize maps pixel centres exactly so), and a horizontal
flip maps ``u`` to ``W - u``, hence ``cx -> W - cx`` (``W - 1 - cx`` is the same rule
for pixel-index coordinates, whose origin is the centre of the first pixel).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from rich.console import Console
from torch.utils.data import Dataset, Sampler

from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.geometry.canonical import (
    IntrinsicsLike,
    canonical_intrinsics,
    depth_to_canonical,
    image_to_canonical,
)
from depthlens.models.spec import IMAGENET_MEAN, IMAGENET_STD
from depthlens.train.config import AugmentConfig, MetricConfig, SourceConfig, TrainConfig
from depthlens.train.shards import ShardSource

TargetKind = Literal["depth", "relative_inverse"]

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)


@dataclass(frozen=True)
class RawSample:
    """One item of a source before augmentation.

    ``rgb`` (H, W, 3) uint8; ``target`` (H, W) float32: metric depth in meters when
    ``target_kind == "depth"``, a teacher's relative inverse depth (larger = nearer)
    when ``"relative_inverse"``; ``valid`` (H, W) bool; ``intrinsics`` (4,) float64
    ``(fx, fy, cx, cy)`` in pixels.
    """

    rgb: np.ndarray
    target: np.ndarray
    valid: np.ndarray
    intrinsics: np.ndarray
    target_kind: TargetKind


# --------------------------------------------------------------------------------------
# Geometry of the augmentations


@dataclass(frozen=True)
class CropBox:
    """A crop of ``height`` × ``width`` pixels whose top-left pixel is ``(top, left)``."""

    top: int
    left: int
    height: int
    width: int


def sample_crop(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> CropBox:
    """A random crop keeping a fraction ``scale`` of the area with aspect ``ratio`` (w/h).

    The rule of torchvision's ``RandomResizedCrop.get_params``: up to 10 tries of an
    area fraction uniform in ``scale`` and a log-uniform ratio; if none fits, the
    largest centred crop whose ratio lies in ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return CropBox(top, left, h, w)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return CropBox((height - h) // 2, (width - w) // 2, h, w)


def transform_intrinsics(
    intrinsics: IntrinsicsLike, box: CropBox, size: tuple[int, int], flip: bool
) -> np.ndarray:
    """``(fx, fy, cx, cy)`` after cropping ``box``, resizing it to ``size`` = (h, w) and,
    if ``flip``, mirroring left-right (continuous pixel coordinates, see the module)."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    sx, sy = size[1] / box.width, size[0] / box.height
    fx, cx = fx * sx, (cx - box.left) * sx
    fy, cy = fy * sy, (cy - box.top) * sy
    if flip:
        cx = size[1] - cx
    return np.array([fx, fy, cx, cy], dtype=np.float64)


def crop_resize_flip(
    array: np.ndarray,
    box: CropBox,
    size: tuple[int, int],
    flip: bool,
    interpolation: Literal["nearest", "linear", "area"],
) -> np.ndarray:
    """Crop ``box`` from an (H, W) or (H, W, C) array, resize to ``size`` = (h, w), flip.

    ``nearest`` picks the source pixel whose area holds the output pixel's centre
    (OpenCV ``INTER_NEAREST_EXACT``; plain ``INTER_NEAREST`` is shifted by half a pixel);
    use it for depth and masks so no value is invented across an edge.
    """
    crop = array[box.top : box.top + box.height, box.left : box.left + box.width]
    if (box.height, box.width) != size:
        flag = {
            "nearest": cv2.INTER_NEAREST_EXACT,
            "linear": cv2.INTER_LINEAR,
            "area": cv2.INTER_AREA,
        }[interpolation]
        work = crop.astype(np.uint8) if crop.dtype == np.bool_ else crop
        resized = cv2.resize(work, (size[1], size[0]), interpolation=flag)
        if resized.ndim == 2 and crop.ndim == 3:
            resized = resized[:, :, None]
        crop = resized.astype(np.bool_) if crop.dtype == np.bool_ else resized
    if flip:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def jitter_colour(
    rgb: np.ndarray, brightness: float, contrast: float, saturation: float
) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] with brightness scaled by ``brightness``, then the
    contrast about the mean grey level and the saturation about each pixel's grey value
    scaled by ``contrast`` and ``saturation`` (1 leaves the image unchanged)."""
    # ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale.
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = rgb * brightness
    mean = float((out @ luma).mean())
    out = (out - mean) * contrast + mean
    grey = (out @ luma)[:, :, None]
    out = (out - grey) * saturation + grey
    return np.clip(out, 0.0, 1.0)


def augment(
    raw: RawSample, rng: np.random.Generator, config: AugmentConfig, size: int
) -> RawSample:
    """A random resized crop to ``size`` × ``size``, a coin-flip mirror and colour jitter.

    Intrinsics follow the crop, resize and flip; colour jitter leaves them. The RGB
    image is resized with area averaging when shrinking and bilinearly when enlarging;
    targets and masks with nearest neighbours.
    """
    height, width = raw.rgb.shape[:2]
    box = sample_crop(height, width, config.crop_scale, config.crop_ratio, rng)
    flip = bool(config.hflip and rng.random() < 0.5)
    out_size = (size, size)
    shrink = box.height * box.width > size * size
    rgb = crop_resize_flip(raw.rgb, box, out_size, flip, "area" if shrink else "linear")
    target = crop_resize_flip(raw.target, box, out_size, flip, "nearest")
    valid = crop_resize_flip(raw.valid, box, out_size, flip, "nearest")
    jitters = [
        rng.uniform(1.0 - j, 1.0 + j)
        for j in (config.brightness, config.contrast, config.saturation)
    ]
    if any(j != 1.0 for j in jitters):
        rgb_float = jitter_colour(rgb.astype(np.float32) / 255.0, *jitters)
        rgb = np.round(rgb_float * 255.0).astype(np.uint8)
    intrinsics = transform_intrinsics(raw.intrinsics, box, out_size, flip)
    return RawSample(rgb, target, valid, intrinsics, raw.target_kind)


def to_canonical(raw: RawSample, config: MetricConfig) -> RawSample:
    """Move a depth-labelled sample to the canonical camera (``geometry/canonical.py``)."""
    if raw.target_kind != "depth":
        raise ValueError("only metric depth labels can be moved to the canonical camera")
    k = raw.intrinsics
    if config.transform == "label":
        target = depth_to_canonical(raw.target, k, config.focal)
        return RawSample(
            raw.rgb, target, raw.valid, np.array(canonical_intrinsics(k, config.focal)), "depth"
        )
    rgb, k_c = image_to_canonical(raw.rgb, k, config.focal, "linear")
    target, _ = image_to_canonical(raw.target, k, config.focal, "nearest")
    valid, _ = image_to_canonical(raw.valid, k, config.focal, "nearest")
    return RawSample(rgb, target, valid, np.array(k_c), "depth")


def to_tensors(
    raw: RawSample, source: int, invalid_is_far: bool = False
) -> dict[str, torch.Tensor]:
    """The training dict of one augmented sample (see the module docstring).

    ``invalid_is_far``: pixels without a target are sky (zero disparity), not unknown.
    """
    image = (raw.rgb.astype(np.float32) / 255.0 - _MEAN) / _STD
    target = raw.target.astype(np.float32)
    valid = raw.valid & np.isfinite(target) & (target > 0)
    if raw.target_kind == "depth":
        depth = np.where(valid, target, 0.0).astype(np.float32)
        disparity = np.divide(1.0, depth, out=np.zeros_like(depth), where=valid)
    else:
        valid = raw.valid & np.isfinite(target)
        depth = np.zeros_like(target)
        disparity = np.where(valid, target, 0.0).astype(np.float32)
    disparity_valid = np.ones_like(valid) if invalid_is_far else valid
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "depth": torch.from_numpy(depth),
        "valid": torch.from_numpy(np.ascontiguousarray(valid)),
        "disparity": torch.from_numpy(disparity),
        "disparity_valid": torch.from_numpy(np.ascontiguousarray(disparity_valid)),
        "intrinsics": torch.from_numpy(raw.intrinsics.astype(np.float32)),
        "has_depth": torch.tensor(raw.target_kind == "depth"),
        "source": torch.tensor(source, dtype=torch.int64),
    }


# --------------------------------------------------------------------------------------
# Sources


# Horizontal field of view assumed for RGB-D items whose manifest has no intrinsics
# (pseudo-labelled photos without EXIF): a typical phone camera's. Relative training
# never uses the intrinsics; metric training needs real ones (FolderSource checks).
DEFAULT_FOV_DEG = 60.0


def camera_intrinsics(camera: Camera | None, height: int, width: int) -> np.ndarray:
    """``(fx, fy, cx, cy)`` of ``camera``, or of a centred DEFAULT_FOV_DEG camera."""
    if camera is None:
        camera = Camera.from_fov(width, height, DEFAULT_FOV_DEG)
    return np.array([camera.fx, camera.fy, camera.cx, camera.cy], dtype=np.float64)


class SynthSource:
    """Synthetic scenes rendered on demand: ``load`` draws a seed from ``[first, last)``.

    Rendering happens in whichever process calls ``load``: the DataLoader workers.
    """

    def __init__(self, config: SourceConfig) -> None:
        self.seeds = config.seeds
        self.size = config.size
        self.kinds = list(config.kinds) if config.kinds is not None else None

    def render(self, seed: int) -> RawSample:
        from depthlens.synth.render import render_batch

        sample = render_batch([seed], self.size[0], self.size[1], kinds=self.kinds, device="cpu")[0]
        k = camera_intrinsics(sample.camera, *sample.depth.shape)
        return RawSample(sample.rgb, sample.depth, sample.valid, k, "depth")

    def load(self, rng: np.random.Generator) -> RawSample:
        return self.render(int(rng.integers(self.seeds[0], self.seeds[1])))


class FolderSource:
    """An RGB-D folder (``depthlens.io.rgbd``); ``load`` draws an item uniformly (with
    replacement).

    Its manifest says what the depth files hold: metric depth in meters, or, for the
    folders ``depthlens pseudo-label`` writes (``"target": "relative_inverse"`` on every
    line), a teacher's relative inverse depth. ``expect`` refuses the other kind.
    """

    def __init__(
        self, path: str | Path, expect: TargetKind | None = None, need_camera: bool = False
    ) -> None:
        from depthlens.io.rgbd import RGBDFolder

        self.path = Path(path)
        self.folder = RGBDFolder(self.path)
        self.target_kind = folder_target_kind(self.folder.entries, self.path)
        if not len(self.folder):
            raise UsageError(f"The RGB-D folder {self.path} holds no samples.")
        if expect is not None and expect != self.target_kind:
            what = {"depth": "metric depth", "relative_inverse": "relative pseudo-labels"}
            raise UsageError(
                f"{self.path} holds {what[self.target_kind]}, but its source in the config "
                f"says {what[expect]} (kind folder: depth, kind pseudo: pseudo-labels)."
            )
        if need_camera and any("fx" not in entry for entry in self.folder.entries):
            raise UsageError(
                f"{self.path} has samples without intrinsics (fx, fy, cx, cy), which metric "
                "training needs to reach the canonical camera."
            )

    def __len__(self) -> int:
        return len(self.folder)

    def item(self, index: int) -> RawSample:
        item = self.folder[index]
        k = camera_intrinsics(item.camera, *item.depth.shape)
        return RawSample(item.rgb, item.depth, item.valid, k, self.target_kind)

    def load(self, rng: np.random.Generator) -> RawSample:
        return self.item(int(rng.integers(0, len(self.folder))))


def folder_target_kind(entries: Sequence[dict[str, Any]], path: Path) -> TargetKind:
    """What the depth files of an RGB-D folder hold, from its manifest lines' ``target``
    (absent: metric depth); a folder mixing both is refused."""
    kinds = {entry.get("target", "depth") for entry in entries}
    unknown = kinds - {"depth", "relative_inverse"}
    if unknown:
        raise UsageError(
            f"{path / 'manifest.jsonl'} names an unknown target {sorted(unknown)[0]!r}; "
            "expected relative_inverse or none (metric depth)."
        )
    if len(kinds) > 1:
        raise UsageError(
            f"{path} mixes metric depth and relative pseudo-labels; keep them in two folders."
        )
    return "relative_inverse" if kinds == {"relative_inverse"} else "depth"


Source = SynthSource | FolderSource | ShardSource


# --------------------------------------------------------------------------------------
# Mixing


class MixtureDataset(Dataset[dict[str, torch.Tensor]]):
    """Sample ``k`` of the training stream, for any ``k >= 0`` (see the module docstring).

    Source ``i`` is chosen with probability ``weights[i] / sum(weights)``;
    ``invalid_is_far[i]`` says whether its invalid pixels are sky (``to_tensors``).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        weights: Sequence[float],
        seed: int,
        size: int,
        augment_config: AugmentConfig,
        metric: MetricConfig,
        invalid_is_far: Sequence[bool] | None = None,
    ) -> None:
        if len(sources) != len(weights) or not sources:
            raise ValueError("need one weight per source and at least one source")
        self.invalid_is_far = list(invalid_is_far or [False] * len(sources))
        total = float(sum(weights))
        self.sources = list(sources)
        self.probabilities = np.asarray(weights, dtype=np.float64) / total
        self.seed = seed
        self.size = size
        self.augment_config = augment_config
        self.metric = metric

    def __len__(self) -> int:
        return 2**62  # endless: a StepSampler picks the indices

    def source_of(self, index: int) -> int:
        """Which source sample ``index`` comes from (cheap: nothing is loaded)."""
        rng = np.random.default_rng([self.seed, index, 0])
        return int(rng.choice(len(self.sources), p=self.probabilities))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        source = self.source_of(index)
        rng = np.random.default_rng([self.seed, index, 1])
        raw = self.sources[source].load(rng)
        raw = augment(raw, rng, self.augment_config, self.size)
        if self.metric.canonical:
            raw = to_canonical(raw, self.metric)
        return to_tensors(raw, source, self.invalid_is_far[source])


class StepSampler(Sampler[int]):
    """The stream indices one process reads for steps ``[start, stop)``.

    Step ``s`` holds the global indices ``s·B … s·B + B − 1`` (``B = batch_size``);
    process ``rank`` of ``world`` reads the ``B / world`` of them starting at
    ``s·B + rank·B / world``. Per-rank streams replace a DistributedSampler: the
    dataset is endless and indexed by stream position.
    """

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} does not split over {world} processes")
        self.start, self.stop = start, stop
        self.batch_size, self.rank = batch_size, rank
        self.local = batch_size // world

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.rank * self.local
            yield from range(first, first + self.local)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.local


def build_sources(config: TrainConfig) -> list[Source]:
    """One source per ``config.data`` entry; pre-rendered synth sources read their folder
    (which :func:`prerender_synth` must have written)."""
    sources: list[Source] = []
    for index, entry in enumerate(config.data):
        if entry.kind == "synth" and entry.prerender == 0:
            sources.append(SynthSource(entry))
        elif entry.kind == "synth":
            sources.append(FolderSource(prerender_path(config, index), "depth"))
        elif entry.kind == "folder":
            sources.append(FolderSource(str(entry.path), "depth", config.metric.enabled))
        elif entry.kind == "shards":
            sources.append(ShardSource(str(entry.path)))
        else:
            sources.append(FolderSource(str(entry.path), "relative_inverse"))
    return sources


def prerender_path(config: TrainConfig, index: int) -> Path:
    """Where source ``index`` (a synth source with ``prerender > 0``) keeps its scenes."""
    entry = config.data[index]
    if entry.path:
        return Path(entry.path)
    return Path(config.output_dir) / f"synth-{entry.seeds[0]}-{entry.prerender}"


PRERENDER_MANIFEST = "prerender.json"
PRERENDER_CHUNK = 16


def prerender_synth(config: TrainConfig, index: int, console: Console | None = None) -> Path:
    """Render the first ``prerender`` seeds of synth source ``index`` once, into an RGB-D
    folder (depth as exact NPY, no normals), and return the folder.

    ``prerender.json`` in the folder names what it holds and whether it is complete. An
    interrupted pre-render resumes with the seeds not yet in the manifest; a folder
    holding other scenes is refused rather than mixed.
    """
    from depthlens.io.rgbd import RGBDWriter, sample_name
    from depthlens.synth.render import choose_kind, render_batch

    entry = config.data[index]
    folder = prerender_path(config, index)
    first, count = entry.seeds[0], entry.prerender
    kinds = list(entry.kinds) if entry.kinds is not None else None
    description: dict[str, Any] = {
        "seeds": [first, first + count],
        "size": list(entry.size),
        "kinds": kinds,
    }
    manifest = folder / PRERENDER_MANIFEST
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        if {k: found.get(k) for k in description} != description:
            raise UsageError(
                f"{folder} holds other pre-rendered scenes ({found}) than data[{index}] asks "
                f"for; remove it or set data[{index}].path elsewhere."
            )
        if found.get("complete"):
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({**description, "complete": False}) + "\n")
    writer = RGBDWriter(folder, depth_format="npy", normals=False)
    seeds = [
        seed
        for seed in range(first, first + count)
        if sample_name(choose_kind(seed, kinds), seed) not in writer.names
    ]
    start_time = time.perf_counter()
    for start in range(0, len(seeds), PRERENDER_CHUNK):
        chunk = seeds[start : start + PRERENDER_CHUNK]
        writer.write(render_batch(chunk, entry.size[0], entry.size[1], kinds=kinds))
        if console is not None:
            done = count - len(seeds) + start + len(chunk)
            elapsed = time.perf_counter() - start_time
            console.print(f"pre-rendered {done} of {count} scenes into {folder} ({elapsed:.0f} s)")
    manifest.write_text(json.dumps({**description, "complete": True}) + "\n")
    return folder


def build_dataset(config: TrainConfig) -> MixtureDataset:
    """The training stream of ``config``."""
    return MixtureDataset(
        build_sources(config),
        [entry.weight for entry in config.data],
        config.seed,
        config.input_size,
        config.augment,
        config.metric,
        [entry.far_invalid for entry in config.data],
    )
