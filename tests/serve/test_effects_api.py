"""POST /v1/effects/{name}: each effect through the API equals the library's own."""

from __future__ import annotations

import base64
import io
import json

import imageio.v3 as iio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

import depthlens
from depthlens.effects.apply import EffectSettings, parallax_animation, render_still
from depthlens.serve import ServeSettings, create_app
from depthlens.synth.demo import demo_scene
from tests.serve.test_api import assert_error, png_bytes

MODEL = "depthlens-small"
HEIGHT, WIDTH = 72, 96


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return demo_scene(HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def depth(photo) -> depthlens.DepthResult:
    return depthlens.load_model(MODEL, device="cpu").predict(photo)


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeSettings(models=(MODEL,), device="cpu"))) as c:
        yield c


def post_effect(client, name: str, photo: np.ndarray, **fields):
    files = {"image": ("room.png", png_bytes(photo), "image/png")}
    return client.post(f"/v1/effects/{name}", files=files, data=fields)


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize(
    ("name", "fields", "settings"),
    [
        (
            "bokeh",
            {"focus_x": "10", "focus_y": "60", "aperture": "6"},
            {"focus_point": (10, 60), "aperture": 6.0},
        ),
        (
            "stereo",
            {"layout": "anaglyph", "baseline": "0.05"},
            {"layout": "anaglyph", "baseline": 0.05},
        ),
        ("obstacle", {"format": "png", "threshold": "0.7"}, {"threshold": 0.7}),
    ],
)
def test_still_effects_equal_the_library(client, photo, depth, name, fields, settings):
    response = post_effect(client, name, photo, **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-depth-kind"] == depth.kind
    expected = render_still(name, photo, depth.depth, depth.kind, EffectSettings(**settings))
    np.testing.assert_array_equal(decode_png(response.content), expected.image)


def test_obstacle_json_reports_and_carries_the_annotated_image(client, photo, depth):
    response = post_effect(client, "obstacle", photo)  # json is its default
    assert response.status_code == 200, response.text
    body = response.json()
    expected = render_still("obstacle", photo, depth.depth, depth.kind, EffectSettings())
    assert body["effect"] == "obstacle" and body["model"] == MODEL
    assert body["report"] == json.loads(json.dumps(expected.report))
    assert body["report"]["unit"] == "nearness"  # a relative model: no distance
    image = decode_png(base64.b64decode(body["image_png"]))
    np.testing.assert_array_equal(image, expected.image)


def test_parallax_gif_holds_the_clip(client, photo, depth):
    response = post_effect(client, "parallax", photo, frames="6", fps="10", path="swing")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/gif"
    frames = iio.imread(response.content, index=None)
    assert frames.shape[1:3] == (HEIGHT, WIDTH)
    settings = EffectSettings(path="swing", frames=6)
    expected = list(parallax_animation(photo, depth.depth, depth.kind, settings))
    # GIF keeps a palette per frame: the first frame (the photo) is close, not exact,
    # and the clip moves.
    assert np.abs(frames[0][..., :3].astype(int) - expected[0]).mean() < 6
    assert np.abs(frames[1][..., :3].astype(int) - frames[0][..., :3]).mean() > 0.5


def test_parallax_mp4(client, photo):
    response = post_effect(client, "parallax", photo, frames="4", format="mp4")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    assert len(iio.imread(response.content, index=None, extension=".mp4")) == 4


@pytest.mark.parametrize(
    ("name", "fields", "status", "code", "words"),
    [
        ("sepia", {}, 422, "invalid_parameter", "path parameter 'name'"),
        ("bokeh", {"format": "gif"}, 422, "invalid_parameter", "png or json, not gif"),
        ("bokeh", {"focus_x": "3"}, 422, "invalid_parameter", "both focus_x and focus_y"),
        ("bokeh", {"focus_x": "500", "focus_y": "5"}, 422, "invalid_parameter", "outside the 96"),
        ("stereo", {"layout": "interlaced"}, 422, "invalid_parameter", "stereo layout"),
        ("parallax", {"frames": "1000"}, 422, "invalid_parameter", "frames"),
        ("bokeh", {"model": "dpt-large"}, 404, "unknown_model", "not served"),
    ],
)
def test_bad_requests_are_one_sentence(client, photo, name, fields, status, code, words):
    message = assert_error(post_effect(client, name, photo, **fields), status, code)
    assert words in message


def test_models_lists_the_effects(client):
    assert client.get("/v1/models").json()["effects"] == ["bokeh", "parallax", "stereo", "obstacle"]


def test_the_same_photo_is_predicted_once_per_model(client, photo, monkeypatch):
    calls = []
    estimator = client.app.state.runtime.estimators[MODEL]
    original = estimator.predict
    monkeypatch.setattr(estimator, "predict", lambda image: calls.append(1) or original(image))
    other = photo.copy()
    other[0, 0] = 255 - other[0, 0]  # other bytes, so not in the cache yet
    first = post_effect(client, "bokeh", other, focus_x="5", focus_y="5")
    again = post_effect(client, "bokeh", other, focus_x="60", focus_y="40")
    depth = client.post("/v1/depth", files={"image": ("x.png", png_bytes(other), "image/png")})
    assert [r.headers["x-depth-cache"] for r in (first, again, depth)] == ["miss", "hit", "hit"]
    assert len(calls) == 1
    assert first.content != again.content  # refocused, from the kept depth


def test_cache_keeps_recent_photos_within_its_pixel_budget():
    from depthlens.io.images import Image
    from depthlens.serve.cache import DepthCache

    def entry(side: int, index: int) -> tuple[Image, depthlens.DepthResult]:
        rgb = np.full((side, side, 3), index, np.uint8)
        depth = np.full((side, side), index, np.float32)
        return Image(rgb, None, f"p{index}"), depthlens.DepthResult(depth, "metric", "m", "p")

    cache = DepthCache(max_pixels=2 * 100)
    keys = [DepthCache.key("m", bytes([i])) for i in range(3)]
    entries = [entry(10, i) for i in range(3)]
    for key, (image, result) in zip(keys, entries, strict=True):
        cache.put(key, image, result)
    assert len(cache) == 2 and cache.get(keys[0]) is None
    kept = cache.get(keys[2])
    assert kept is not None
    (image, result), (given_image, given_result) = kept, entries[2]
    # Equal copies: the arrays a prediction hands over are not the ones kept.
    np.testing.assert_array_equal(image.rgb, given_image.rgb)
    np.testing.assert_array_equal(result.depth, given_result.depth)
    assert not np.shares_memory(image.rgb, given_image.rgb)
    assert not np.shares_memory(result.depth, given_result.depth)
    cache.put(DepthCache.key("m", b"big"), *entry(20, 9))
    assert len(cache) == 2  # larger than the whole budget: never kept
    assert DepthCache.key("other", bytes([2])) != keys[2]  # per model


def test_a_given_field_of_view_is_the_camera_used_and_reported(client, photo):
    from depthlens.geometry.camera import Camera

    fields = {"format": "json", "fov": "90"}
    files = {"image": ("x.png", png_bytes(photo), "image/png")}
    body = client.post("/v1/depth", files=files, data=fields).json()
    expected = Camera.from_fov(WIDTH, HEIGHT, 90.0)
    assert body["camera"]["source"] == "user"
    assert body["camera"]["fx"] == pytest.approx(expected.fx) == pytest.approx(WIDTH / 2)
    assumed = client.post("/v1/depth", files=files, data={"format": "json"}).json()
    assert assumed["camera"]["source"] == "default"
    effect = post_effect(client, "obstacle", photo, fov="90").json()
    assert effect["camera"]["fx"] == pytest.approx(WIDTH / 2)
    bad = post_effect(client, "bokeh", photo, fov="200")
    assert_error(bad, 422, "invalid_parameter")


def test_metric_model_meters_follow_the_field_of_view(photo):
    settings = ServeSettings(models=("depthlens-small-metric",), device="cpu")
    with TestClient(create_app(settings)) as metric:
        files = {"image": ("x.png", png_bytes(photo), "image/png")}
        maps = [
            np.load(io.BytesIO(metric.post("/v1/depth", files=files, data=fields).content))
            for fields in ({"format": "npy", "fov": "60"}, {"format": "npy", "fov": "90"})
        ]
    # fx = (W / 2) / tan(fov / 2): a wider view is a shorter lens, so nearer meters.
    ratio = np.tan(np.radians(30.0)) / np.tan(np.radians(45.0))
    np.testing.assert_allclose(maps[1], maps[0] * ratio, rtol=1e-5)
