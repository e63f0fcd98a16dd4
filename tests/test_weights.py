"""Finding weights, safe and strict loading, and the convert round trip."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import depthlens
from depthlens.errors import UnknownModelError, WeightsError
from depthlens.models.registry import MODELS, get_spec
from depthlens.models.weights import (
    build_network,
    find_weights,
    load_strict,
    read_state_dict,
    save_converted,
)
from tests.checkpoints import official_checkpoint

SQUARE = Path(__file__).parent / "expected" / "inputs" / "square.png"


def test_missing_weights_name_file_place_and_licence():
    with pytest.raises(WeightsError) as info:
        depthlens.load_model("depth-anything-v2-small")
    message = str(info.value)
    assert "depth_anything_v2_vits.pth" in message
    assert "depth-anything/Depth-Anything-V2-Small-hf" in message
    assert os.environ["DEPTHLENS_HOME"] in message
    assert "Apache-2.0" in message
    assert info.value.exit_code == 2


def test_every_downloadable_zoo_model_reports_missing_weights_offline():
    for spec in MODELS.values():
        if spec.weights.bundled:
            continue
        with pytest.raises(WeightsError, match=spec.name):
            find_weights(spec)


def test_missing_bundled_weights_say_so(monkeypatch, tmp_path):
    from depthlens.models import weights

    monkeypatch.setattr(weights, "BUNDLED_DIR", tmp_path)
    with pytest.raises(WeightsError, match="bundled weights of depthlens-small"):
        depthlens.load_model("depthlens-small")


def test_official_file_in_the_cache_folder_is_found(midas_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTHLENS_HOME", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "midas_v21_small_256.pt").symlink_to(midas_checkpoint)
    location = find_weights(get_spec("midas-v21-small"))
    assert location.origin == "cache" and location.kind == "file"


def test_strict_loading_lists_missing_and_unexpected_keys(midas_checkpoint):
    spec = get_spec("midas-v21-small")
    network = build_network(
        spec, find_weights(spec, midas_checkpoint)
    )  # a clean load first: the official layout fits
    state = dict(network.state_dict())
    dropped = sorted(state)[3]
    del state[dropped]
    state["decoder.not_a_layer.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        load_strict(network, state, "test")
    assert dropped in str(info.value) and "decoder.not_a_layer.weight" in str(info.value)


def test_wrong_shape_is_reported(midas_checkpoint):
    spec = get_spec("midas-v21-small")
    network = build_network(spec, find_weights(spec, midas_checkpoint))
    state = dict(network.state_dict())
    name = next(k for k, v in state.items() if v.ndim == 4)
    state[name] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(WeightsError, match="wrong shape"):
        load_strict(network, state, "test")


def test_truncated_official_checkpoint_is_an_error(midas_checkpoint, tmp_path):
    broken = tmp_path / "midas_v21_small_256.pt"
    broken.write_bytes(midas_checkpoint.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="Could not read weights"):
        depthlens.load_model("midas-v21-small", weights=broken)


class _Payload:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickles_with_code_are_refused_in_one_sentence(tmp_path, writer):
    path = tmp_path / "evil.pt"
    if writer == "pickle":
        with path.open("wb") as handle:
            pickle.dump({"x": _Payload()}, handle)
    else:
        torch.save({"x": _Payload()}, path)
    with pytest.raises(WeightsError) as caught:
        read_state_dict(path)
    message = str(caught.value)
    # one sentence, naming what was found, and never the advice to unpickle anyway
    assert message.count(". ") == 0 and message.endswith(".") and ".." not in message
    assert writer == "pickle" or "system" in message  # torch names the global it met
    assert "weights_only" not in message and "False" not in message


def test_training_container_is_unwrapped(tmp_path):
    state = official_checkpoint("midas_v21_small_256", seed=1)
    path = tmp_path / "train.pt"
    torch.save({"model": state, "optimizer": {"lr": torch.tensor(1.0)}}, path)
    assert set(read_state_dict(path)) == set(state)


def test_convert_round_trip_gives_identical_depth(midas_checkpoint, tmp_path):
    official = depthlens.load_model("midas-v21-small", weights=midas_checkpoint, device="cpu")
    folder = save_converted(official.spec, official.network, tmp_path / "converted")
    converted = depthlens.load_model(folder, device="cpu")
    assert converted.spec.name == "midas-v21-small"
    np.testing.assert_array_equal(official.predict(SQUARE).depth, converted.predict(SQUARE).depth)


def test_official_file_name_identifies_the_model(midas_checkpoint):
    model = depthlens.load_model(midas_checkpoint, device="cpu")
    assert model.spec.name == "midas-v21-small"
    assert model.kind == "relative_inverse"


def test_models_are_cached_per_process(midas_checkpoint):
    first = depthlens.load_model("midas-v21-small", weights=midas_checkpoint, device="cpu")
    second = depthlens.load_model("midas-v21-small", weights=midas_checkpoint, device="cpu")
    assert first is second


def test_bundled_metric_model_gives_meters_that_follow_the_camera():
    from depthlens.geometry.camera import Camera
    from depthlens.io.images import Image
    from depthlens.synth.render import render_batch

    estimator = depthlens.load_model("depthlens-small-metric", device="cpu")
    assert estimator.kind == "metric" and estimator.spec.canonical_focal == 1000.0
    scene = render_batch([3_000_000_001], 96, 128)[0]
    results = [
        estimator.predict(Image(scene.rgb, Camera(f, f, 64.0, 48.0, 128, 96), "scene"))
        for f in (100.0, 200.0)
    ]
    assert (results[0].depth > 0).all() and results[0].camera.fx == 100.0
    # Same picture, twice the focal length: the canonical camera puts it twice as far.
    np.testing.assert_allclose(results[1].depth, 2.0 * results[0].depth, rtol=1e-5)
    # Without a camera the documented default (60 degrees) is used, and said so.
    assumed = estimator.predict(scene.rgb)
    assert assumed.camera.source == "default"


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("DPT-Large", "dpt-large"),
        ("da2-small", "depth-anything-v2-small"),
        ("Depth_Anything_V2_Small", "depth-anything-v2-small"),
        ("midas", "midas-v21-small"),
        ("dpthybrid", "dpt-hybrid"),
    ],
)
def test_unknown_models_suggest_what_was_meant(typed, meant):
    with pytest.raises(UnknownModelError) as caught:
        depthlens.load_model(typed)
    message = str(caught.value)
    assert f"(did you mean {meant}" in message and "depthlens models" in message
    assert "depth-anything-v2-metric-outdoor-large" not in message  # not the whole zoo
    assert message.count(". ") == 0 and message.endswith(".")


def test_an_unknown_model_with_nothing_close_says_where_the_zoo_is():
    with pytest.raises(UnknownModelError) as caught:
        depthlens.load_model("no-such-model")
    assert "did you mean" not in str(caught.value) and "depthlens models" in str(caught.value)
