"""Network input sizes must be the ones the official transforms produce."""

from __future__ import annotations

import numpy as np
import pytest

from depthlens.models.estimator import (
    MAX_SIDE_FACTOR,
    MIN_NETWORK_SIDE,
    network_input_size,
    preprocess,
)
from depthlens.models.registry import DEPTH_ANYTHING_INPUT, DPT_INPUT, MIDAS_SMALL_INPUT, MODELS


def official_get_size(width, height, target_w, target_h, keep_aspect, method, multiple):
    """A line-by-line transcription of isl-org/MiDaS: midas/transforms.py::Resize.get_size
    (also vendored by both Depth Anything repos), kept independent of our code."""

    def constrain(x, min_val=0, max_val=None):
        y = (np.round(x / multiple) * multiple).astype(int)
        if max_val is not None and y > max_val:
            y = (np.floor(x / multiple) * multiple).astype(int)
        if y < min_val:
            y = (np.ceil(x / multiple) * multiple).astype(int)
        return y

    scale_height = target_h / height
    scale_width = target_w / width
    if keep_aspect:
        if method == "lower_bound":
            if scale_width > scale_height:
                scale_height = scale_width
            else:
                scale_width = scale_height
        elif method == "upper_bound":
            if scale_width < scale_height:
                scale_height = scale_width
            else:
                scale_width = scale_height
        elif method == "minimal":
            if abs(1 - scale_width) < abs(1 - scale_height):
                scale_height = scale_width
            else:
                scale_width = scale_height
    if method == "lower_bound":
        new_height = constrain(scale_height * height, min_val=target_h)
        new_width = constrain(scale_width * width, min_val=target_w)
    elif method == "upper_bound":
        new_height = constrain(scale_height * height, max_val=target_h)
        new_width = constrain(scale_width * width, max_val=target_w)
    else:
        new_height = constrain(scale_height * height)
        new_width = constrain(scale_width * width)
    return int(new_width), int(new_height)


# Worked sizes from the reference (CHECKPOINTS.md §2.6), (H, W) -> (h, w) per model.
WORKED = [
    ((480, 640), (192, 256), (384, 512), (518, 686)),
    ((375, 1242), (64, 256), (384, 1280), (518, 1722)),
    ((352, 1216), (64, 256), (384, 1312), (518, 1792)),
    ((436, 1024), (96, 256), (384, 896), (518, 1218)),
    ((768, 1024), (192, 256), (384, 512), (518, 686)),
    ((4032, 6048), (160, 256), (384, 576), (518, 770)),
]


@pytest.mark.parametrize(("image", "midas", "dpt", "da"), WORKED)
def test_published_worked_sizes(image, midas, dpt, da):
    assert network_input_size(*image, MIDAS_SMALL_INPUT) == midas
    assert network_input_size(*image, DPT_INPUT) == dpt
    assert network_input_size(*image, DEPTH_ANYTHING_INPUT) == da


AWKWARD = [(479, 641), (100, 1000), (2000, 30), (1, 1), (13, 7), (518, 518), (257, 255), (33, 4000)]
# Strips thinner than any photo: the official rule gives 0 rows or millions of columns.
THIN = [(1, 16), (10, 200), (20, 1000), (1, 5000), (5000, 1), (1, 7), (3, 100_000)]


def official_size(height, width, policy):
    expected_w, expected_h = official_get_size(
        width,
        height,
        policy.size[1],
        policy.size[0],
        policy.keep_aspect,
        policy.method,
        policy.multiple_of,
    )
    return int(expected_h), int(expected_w)


@pytest.mark.parametrize("shape", AWKWARD + THIN)
@pytest.mark.parametrize("policy", [MIDAS_SMALL_INPUT, DPT_INPUT, DEPTH_ANYTHING_INPUT])
def test_awkward_shapes_match_the_official_rule_within_the_bounds(shape, policy):
    """Where the official side lies within [one multiple >= MIN_NETWORK_SIDE,
    MAX_SIDE_FACTOR × the longest target side] it is kept; beyond, the bound is used."""
    ours = network_input_size(*shape, policy)
    m = policy.multiple_of
    low = -(-MIN_NETWORK_SIDE // m) * m
    high = MAX_SIDE_FACTOR * max(policy.size) // m * m
    for official, side in zip(official_size(*shape, policy), ours, strict=True):
        assert side == (low if official < low else high if official > high else official)


@pytest.mark.parametrize("policy", [MIDAS_SMALL_INPUT, DPT_INPUT, DEPTH_ANYTHING_INPUT])
def test_photos_up_to_four_to_one_are_sized_as_upstream(policy):
    for height, width in [(479, 641), (1000, 4000), (4000, 1000), (1080, 1920), (13, 7), (1, 1)]:
        if max(height, width) <= MAX_SIDE_FACTOR * min(height, width):
            assert network_input_size(height, width, policy) == official_size(height, width, policy)


def test_every_zoo_size_is_a_multiple_and_bounded():
    for spec in MODELS.values():
        for height, width in AWKWARD + THIN:
            h, w = network_input_size(height, width, spec.input)
            m = spec.input.multiple_of
            assert h % m == 0 and w % m == 0, spec.name
            assert MIN_NETWORK_SIDE <= min(h, w) <= max(h, w) <= 4 * max(spec.input.size)
            target_h, target_w = spec.input.size  # Metric3D's canvas is not square
            if spec.input.method == "lower_bound":
                assert h >= target_h and w >= target_w, spec.name
            if spec.input.method == "upper_bound":
                assert h <= target_h and w <= target_w, spec.name


def test_preprocess_normalises_per_channel():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    tensor = preprocess(rgb, MIDAS_SMALL_INPUT)
    assert tensor.shape == (3, 192, 256) and tensor.dtype == np.float32
    mean, std = MIDAS_SMALL_INPUT.mean, MIDAS_SMALL_INPUT.std
    for channel, value in enumerate((1.0, 128 / 255, 0.0)):
        np.testing.assert_allclose(tensor[channel], (value - mean[channel]) / std[channel], 1e-6)
