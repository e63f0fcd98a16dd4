"""The prompt depth of ``depthlens serve``: the ``prompt_depth`` (and ``prompt_scale``) form
fields, with a random Prompt Depth Anything checkpoint in the official layout beside
the bundled depthlens-small."""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import depthlens
from depthlens.serve import ServeSettings, create_app
from depthlens.serve.jobs import prompt_pixels
from depthlens.synth.demo import demo_scene
from tests.checkpoints import official_checkpoint
from tests.serve.test_api import assert_error, png_bytes

PROMPT_MODEL = "prompt-depth-anything-vits"
OTHER = "depthlens-small"
HEIGHT, WIDTH = 84, 112


def prompt_png(low_mm: int, high_mm: int, rows: int = 24, cols: int = 32) -> bytes:
    """A 16-bit PNG prompt in millimetres, a ramp from ``low_mm`` to ``high_mm``."""
    levels = np.linspace(low_mm, high_mm, rows * cols).reshape(rows, cols).astype(np.uint16)
    ok, data = cv2.imencode(".png", levels)
    assert ok
    return data.tobytes()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("promptda") / "promptda_vits.ckpt"
    torch.save(official_checkpoint("promptda_vits", seed=0), path)
    return str(path)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return demo_scene(HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def client(checkpoint, one_torch_thread):
    settings = ServeSettings(
        models=(PROMPT_MODEL, OTHER), weights={PROMPT_MODEL: checkpoint}, device="cpu"
    )
    with TestClient(create_app(settings)) as c:
        yield c


def post(client, photo: np.ndarray, prompt: bytes | None, route: str = "/v1/depth", **fields):
    files = {"image": ("room.png", png_bytes(photo), "image/png")}
    if prompt is not None:
        files["prompt_depth"] = ("lidar.png", prompt, "application/octet-stream")
    return client.post(route, files=files, data=fields)


def npy_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_depth_is_the_library_prediction_with_that_prompt(client, checkpoint, photo):
    prompt = prompt_png(600, 3500)
    model = depthlens.load_model(PROMPT_MODEL, checkpoint, device="cpu")
    expected = model.predict(photo, prompt_depth=prompt).depth
    response = post(client, photo, prompt, model=PROMPT_MODEL, format="npy")
    assert response.headers["X-Depth-Kind"] == "metric"
    depth = npy_of(response)
    assert depth.shape == (HEIGHT, WIDTH)
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-6)
    # the same prompt in meters as NPY, with prompt_scale: the same numbers go in
    meters = cv2.imdecode(np.frombuffer(prompt, np.uint8), cv2.IMREAD_UNCHANGED) / 1000.0
    in_cm = npy_bytes(meters * 100)
    response = post(client, photo, in_cm, model=PROMPT_MODEL, format="npy", prompt_scale="0.01")
    np.testing.assert_allclose(npy_of(response), expected, rtol=0, atol=1e-5)


def test_another_prompt_is_not_served_from_the_cache(client, photo):
    first = post(client, photo, prompt_png(500, 2000), model=PROMPT_MODEL, format="npy")
    again = post(client, photo, prompt_png(500, 2000), model=PROMPT_MODEL, format="npy")
    other = post(client, photo, prompt_png(1000, 6000), model=PROMPT_MODEL, format="npy")
    scaled = post(
        client, photo, prompt_png(500, 2000), model=PROMPT_MODEL, format="npy", prompt_scale="0.002"
    )
    assert first.headers["X-Depth-Cache"] == "miss"
    assert again.headers["X-Depth-Cache"] == "hit"
    assert other.headers["X-Depth-Cache"] == scaled.headers["X-Depth-Cache"] == "miss"
    base = npy_of(first)
    np.testing.assert_array_equal(npy_of(again), base)
    # the output spans the prompt's range (min/max denormalisation): 0.5-2 m vs 1-6 m
    assert np.abs(npy_of(other) - base).max() > 0.5
    assert np.abs(npy_of(scaled) - base).max() > 0.5


def test_effects_take_the_prompt_too(client, photo):
    response = post(
        client,
        photo,
        prompt_png(600, 3500),
        route="/v1/effects/obstacle",
        model=PROMPT_MODEL,
        threshold="1.5",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == PROMPT_MODEL and body["kind"] == "metric"
    assert body["report"]["unit"] == "m"


def test_the_model_list_says_which_models_need_a_prompt(client):
    listed = {m["name"]: m["needs_prompt_depth"] for m in client.get("/v1/models").json()["models"]}
    assert listed == {PROMPT_MODEL: True, OTHER: False}


def test_a_prompt_model_without_a_prompt_is_refused(client, photo):
    message = assert_error(post(client, photo, None, model=PROMPT_MODEL), 422, "invalid_parameter")
    assert PROMPT_MODEL in message and "'prompt_depth'" in message


def test_a_prompt_for_a_model_that_takes_none_is_refused(client, photo):
    response = post(client, photo, prompt_png(600, 3500), model=OTHER)
    message = assert_error(response, 422, "invalid_parameter")
    assert f"Model '{OTHER}' takes no prompt depth" in message


def test_prompt_scale_without_a_prompt_is_refused(client, photo):
    response = post(client, photo, None, model=OTHER, prompt_scale="0.001")
    assert "'prompt_scale'" in assert_error(response, 422, "invalid_parameter")


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        (prompt_png(600, 3500, rows=32, cols=24), "rotated"),  # portrait prompt, wide photo
        (prompt_png(600, 3500, rows=10, cols=40), "aspect ratio"),
        (prompt_png(2000, 2000), "one value"),
        (np.zeros((24, 32), np.uint8).tobytes(), "neither a 16-bit PNG nor an NPY/NPZ"),
        (cv2.imencode(".png", np.full((24, 32), 9, np.uint8))[1].tobytes(), "16-bit"),
        (npy_bytes(np.full((24, 32), -1.0)), "negative"),
    ],
)
def test_an_unusable_prompt_is_one_sentence(client, photo, prompt, words):
    response = post(client, photo, prompt, model=PROMPT_MODEL)
    message = assert_error(response, 422, "invalid_parameter")
    assert message.startswith("Prompt depth lidar.png") and words in message


def test_a_prompt_bomb_is_refused_from_its_header(client, photo):
    # 60,000 x 80,000 zeros deflate to a few MB; the header alone says it is too big
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1), np.float32))
    header["shape"] = (60_000, 80_000)
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("depth.npy", npy.getvalue() + b"\0" * 1000)
    data = archive.getvalue()
    assert prompt_pixels(data) == 60_000 * 80_000
    response = post(client, photo, data, model=PROMPT_MODEL)
    assert "Prompt depth lidar.png has 4,800,000,000 pixels" in assert_error(
        response, 413, "too_many_pixels"
    )


def test_prompt_pixels_reads_headers():
    assert prompt_pixels(prompt_png(1, 2, rows=5, cols=7)) == 35
    assert prompt_pixels(npy_bytes(np.ones((6, 4)))) == 24
    assert prompt_pixels(b"\x89PNG\r\n\x1a\n garbage") is None
    assert prompt_pixels(b"PK\x03\x04 not a zip") is None


def test_the_fields_are_in_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    for ref in ("Body_predict_depth_v1_depth_post", "Body_apply_effect_v1_effects__name__post"):
        fields = schema["components"]["schemas"][ref]["properties"]
        assert {"prompt_depth", "prompt_scale"} <= set(fields)
