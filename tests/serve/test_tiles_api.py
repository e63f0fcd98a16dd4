"""Tiles on ``depthlens serve``: the ``tiles``, ``tile_overlap`` and ``upsample`` form
fields of POST /v1/depth give the library's tiled depth, cached apart from one pass."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

import depthlens
from depthlens.serve import ServeSettings, create_app
from depthlens.synth.demo import demo_scene
from tests.serve.test_api import assert_error, png_bytes

MODEL = "depthlens-small"
HEIGHT, WIDTH = 360, 480  # above the model's 256 px: auto takes tiles


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return demo_scene(HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def client(one_torch_thread):
    with TestClient(create_app(ServeSettings(models=(MODEL,), device="cpu"))) as c:
        yield c


def post(client, photo: np.ndarray, **fields):
    files = {"image": ("room.png", png_bytes(photo), "image/png")}
    return client.post("/v1/depth", files=files, data={"format": "npy", **fields})


def npy_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_tiled_depth_is_the_library_tiled_prediction(client, photo):
    model = depthlens.load_model(MODEL, device="cpu")
    expected = model.predict(photo, tiles="auto", tile_overlap=0.3, upsample="guided").depth
    plain = npy_of(post(client, photo))
    tiled = post(client, photo, tiles="auto", tile_overlap="0.3", upsample="guided")
    assert tiled.headers["X-Depth-Cache"] == "miss"  # not the one pass kept before
    depth = npy_of(tiled)
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-6)
    assert np.abs(depth - plain).max() > 1e-3 * np.ptp(plain)
    again = post(client, photo, tiles="auto", tile_overlap="0.3", upsample="guided")
    assert again.headers["X-Depth-Cache"] == "hit"
    np.testing.assert_array_equal(npy_of(again), depth)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"tiles": "lots"}, "whole number"),
        ({"tiles": "40"}, "whole number"),
        ({"tiles": "2", "upsample": "nearest"}, "Upsample must be one of"),
    ],
)
def test_bad_tile_fields_are_one_sentence(client, photo, fields, words):
    assert words in assert_error(post(client, photo, **fields), 422, "invalid_parameter")


def test_an_overlap_out_of_range_is_refused(client, photo):
    response = post(client, photo, tiles="2", tile_overlap="0.9")
    assert response.status_code == 422
