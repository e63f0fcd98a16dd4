"""Family hooks: the estimator runs every family through one loop and names none; a
family's own pre/post-processing lives in its module's ``HOOKS``."""

from __future__ import annotations

import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import depthlens
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image
from depthlens.models import estimator as estimator_module
from depthlens.models import metric3d as m3d
from depthlens.models.estimator import Estimator
from depthlens.models.hooks import (
    GENERIC_HOOKS,
    Finished,
    Prepared,
    canonical_scale,
    hooks_for,
    preprocess,
    resize_output,
)
from depthlens.models.registry import MODELS, get_spec
from depthlens.models.spec import ModelSpec
from depthlens.models.weights import family_module
from tests.models.test_metric3d import _tiny_network


def _image(height: int, width: int, seed: int, camera: Camera | None = None) -> Image:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image(rgb=rgb, camera=camera, source=f"{height}x{width}")


def test_estimator_source_names_no_family() -> None:
    text = Path(estimator_module.__file__).read_text().lower()
    families = {spec.family for spec in MODELS.values()}
    names = families | {family.replace("_", " ") for family in families} | {"midas"}
    assert sorted(name for name in names if name in text) == []


@pytest.mark.parametrize("family", sorted({spec.family for spec in MODELS.values()}))
def test_every_family_resolves_to_hooks(family: str) -> None:
    spec = next(spec for spec in MODELS.values() if spec.family == family)
    hooks = hooks_for(spec)
    assert hooks is getattr(family_module(family), "HOOKS", GENERIC_HOOKS)
    assert callable(hooks.prepare) and callable(hooks.finish)


# ------------------------------------------------------------------ a toy family

CANVAS = (16, 24)


class ToyHooks:
    """Letterboxes every image onto a fixed canvas (so all sizes batch together) and
    doubles the depth on the way out; records what the estimator asked of it."""

    def __init__(self) -> None:
        self.prepared: list[str] = []
        self.finished: list[tuple[str, int]] = []

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[tuple[int, int]]:
        self.prepared.append(image.source)
        tensor = np.zeros((3, *CANVAS), dtype=np.float32)
        h, w = min(image.height, CANVAS[0]), min(image.width, CANVAS[1])
        tensor[:, :h, :w] = image.rgb[:h, :w].transpose(2, 0, 1) / 255.0
        return Prepared(tensor, (h, w))

    def finish(
        self,
        output: torch.Tensor,
        row: int,
        prepared: Prepared[tuple[int, int]],
        image: Image,
        spec: ModelSpec,
    ) -> Finished:
        self.finished.append((image.source, row))
        h, w = prepared.state
        crop = output[row : row + 1, None, :h, :w]
        depth = F.interpolate(crop, size=(image.height, image.width), mode="nearest")[0, 0]
        confidence = np.ones((image.height, image.width), dtype=np.float32)
        return Finished(
            depth=2 * depth.numpy(), camera=image.camera_or_default, confidence=confidence
        )


class ChannelMean(nn.Module):
    """(B, 3, h, w) -> (B, h, w) channel mean; remembers the batch shapes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return x.mean(dim=1)


def test_a_new_family_plugs_in_through_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = ToyHooks()
    module = types.ModuleType("depthlens.models.toy_family")
    module.HOOKS = hooks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "depthlens.models.toy_family", module)
    spec = replace(MODELS["depthlens-small"], name="toy", family="toy_family")  # type: ignore[arg-type]
    network = ChannelMean()
    estimator = Estimator(spec, network)
    assert estimator.hooks is hooks

    images = [_image(h, w, seed) for seed, (h, w) in enumerate([(8, 12), (30, 40), (1, 5), (2, 2)])]
    results = estimator.predict(images, batch_size=3)

    # one canvas, so one group run in order: a batch of 3, then 1
    assert network.shapes == [(3, 3, *CANVAS), (1, 3, *CANVAS)]
    assert hooks.prepared == [image.source for image in images]
    assert hooks.finished == [(images[i].source, row) for i, row in enumerate([0, 1, 2, 0])]
    for image, result in zip(images, results, strict=True):
        h, w = min(image.height, CANVAS[0]), min(image.width, CANVAS[1])
        seen = image.rgb[:h, :w].astype(np.float32) / 255.0
        crop = torch.from_numpy(seen.mean(axis=2))[None, None]
        expected = F.interpolate(crop, size=(image.height, image.width), mode="nearest")[0, 0]
        np.testing.assert_allclose(result.depth, 2 * expected.numpy(), rtol=1e-6)
        assert result.confidence is not None and result.confidence.shape == result.depth.shape
        assert result.normals is None
        assert result.model == "toy" and result.source == image.source
        assert set(result.timings) == {"preprocess", "forward", "postprocess"}


# ------------------------------------------------------------------ real families


def test_metric3d_through_hooks_equals_direct_calls() -> None:
    estimator = Estimator(get_spec("metric3d-v2-small"), _tiny_network(seed=2))
    camera = Camera(fx=90.0, fy=90.0, cx=35.0, cy=20.0, width=70, height=40)
    images = [_image(40, 70, 0, camera), _image(1, 16, 1)]
    results = estimator.predict(images, batch_size=2)

    prepared = [m3d.preprocess(image.rgb) for image in images]
    with torch.inference_mode():
        output = estimator.network(torch.from_numpy(np.stack([t for t, _ in prepared])))
    for row, (image, (_, box), result) in enumerate(zip(images, prepared, results, strict=True)):
        size = (image.height, image.width)
        depth = m3d.unletterbox(output.depth[row : row + 1], box, size)[0, 0]
        depth = m3d.canonical_to_metric(depth, image.camera_or_default.fx, box.scale)
        confidence = m3d.unletterbox(output.confidence[row : row + 1], box, size)[0, 0]
        normal = m3d.unletterbox(output.normal[row : row + 1, :3], box, size)[0]
        normals = F.normalize(normal, dim=0).permute(1, 2, 0)
        assert np.array_equal(result.depth, depth.numpy())
        assert result.confidence is not None and np.array_equal(
            result.confidence, confidence.numpy()
        )
        assert result.normals is not None and np.array_equal(result.normals, normals.numpy())
        assert result.camera == image.camera_or_default
    assert results[0].camera == camera


def test_generic_hooks_equal_direct_calls_with_canonical_scaling() -> None:
    estimator = depthlens.load_model("depthlens-small-metric", device="cpu")
    spec = estimator.spec
    assert estimator.hooks is GENERIC_HOOKS and spec.canonical_focal is not None
    camera = Camera(fx=150.0, fy=140.0, cx=50.0, cy=30.0, width=100, height=60)
    image = _image(60, 100, 3, camera)
    result = estimator.predict(image)

    tensor = preprocess(image.rgb, spec.input)
    with torch.inference_mode():
        output = estimator.network(torch.from_numpy(tensor[None]))
    depth = resize_output(output, (60, 100), spec.output)
    depth = depth * canonical_scale(camera, (60, 100), tensor.shape[1:], spec.canonical_focal)
    assert np.array_equal(result.depth, depth[0].numpy())
    assert result.camera == camera and result.confidence is None and result.normals is None
