"""The model that ships inside the package: present, loadable offline, and useful."""

from __future__ import annotations

import numpy as np

import depthlens
from depthlens.models.weights import BUNDLED_DIR
from depthlens.synth.render import render_batch
from depthlens.train.validate import affine_invariant_metrics

# Seeds beyond every training and validation range of configs/bundled.yaml.
HELD_OUT = range(3_100_000_000, 3_100_000_012)


def test_bundled_weights_ship_small_and_load_offline():
    path = BUNDLED_DIR / "depthlens-small.safetensors"
    assert path.is_file() and path.stat().st_size <= 40 * 2**20
    model = depthlens.load_model(device="cpu")
    assert model.name == "depthlens-small" and model.kind == "relative_inverse"
    assert sum(p.numel() for p in model.network.parameters()) <= 25_000_000


def test_bundled_model_beats_the_ground_plane_prior_on_held_out_scenes():
    model = depthlens.load_model(device="cpu")
    samples = render_batch(list(HELD_OUT), 192, 192)
    ours, prior = [], []
    rows = np.repeat(np.arange(192, dtype=np.float32)[:, None] + 1.0, 192, axis=1)
    for sample in samples:
        depth = model.predict(sample.rgb).depth
        assert depth.shape == (192, 192) and np.isfinite(depth).all()
        valid = sample.valid & (sample.depth < 80.0)
        ours.append(affine_invariant_metrics(depth, sample.depth, valid)["delta1"])
        prior.append(affine_invariant_metrics(rows, sample.depth, valid)["delta1"])
    assert np.mean(ours) > np.mean(prior) + 0.1, (np.mean(ours), np.mean(prior))
