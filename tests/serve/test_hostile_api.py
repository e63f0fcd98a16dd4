"""Hostile requests to the REST API, in process (issue 13): no answer is a 5xx, every
refusal is one printable sentence, and each route's cost is bounded by ServeSettings.

The real-server behaviour (connections, timeouts, clients that leave) is in
test_hostile_server.py; the page's Content-Security-Policy in a browser in
test_page_csp.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from PIL import ImageFile

from depthlens.errors import UsageError
from depthlens.serve import ServeSettings, create_app
from depthlens.serve.errors import plain_text
from depthlens.serve.middleware import PAGE_CSP
from depthlens.serve.pool import InferencePool
from tests.hostile import GOOD_NAMES, encode, photo, png_claiming, regular_files
from tests.serve.test_api import assert_error

MODEL = "depthlens-small"
PILLOW_LIMIT = f"{2 * (PILImage.MAX_IMAGE_PIXELS or 0):,}"  # 178,956,970


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeSettings(device="cpu")), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def tight_client():
    """A server whose every cost limit is tiny, so that small photos pass them."""
    settings = ServeSettings(
        device="cpu",
        effect_megapixels=0.001,  # 1,000 pixels
        json_megapixels=0.001,
        clip_max_side=24,
        clip_max_frames=5,
        clip_megapixels=0.002,  # 400 pixels a frame for 5 frames: 23 × 17
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def post(client, data: bytes, route: str = "/v1/depth", filename: str = "x.png", **fields):
    return client.post(route, files={"image": (filename, data, "image/png")}, data=fields)


def assert_printable(message: str) -> None:
    """A message with no control characters, no byte dumps and a bounded length."""
    assert message.isprintable() and len(message) <= 301, message
    assert "\\x" not in message and "b'" not in message and 'b"' not in message, message


# ---- no 5xx, one sentence --------------------------------------------------------------


def test_every_hostile_file_is_an_answer_or_one_sentence(client):
    """The campaign's files (tests/hostile.py): good ones 200, the rest 413/415."""
    for name, data in regular_files().items():
        response = post(client, data, filename=name, format="json")
        if name in GOOD_NAMES:
            assert response.status_code == 200, (name, response.text)
        else:
            status = response.status_code
            assert status in (413, 415), (name, response.text)
            code = "too_many_pixels" if status == 413 else "not_an_image"
            assert_printable(assert_error(response, status, code))


def test_a_truncated_jpeg_is_refused_not_padded(client):
    full = encode(photo(64, 96, seed=11), "JPEG", quality=90)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for cut in (len(full) // 2, len(full) - 40):
        response = post(client, full[:cut], filename="cut.jpg")
        message = assert_error(response, 415, "not_an_image")
        assert message.startswith("cut.jpg ") and "truncated" in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def png_with_bad_chunk() -> bytes:
    """A PNG whose image data continues in a chunk with control bytes for a type: Pillow
    says "broken PNG file (chunk b'\\x00\\x1b[\\x07')" while decoding."""
    data = encode(photo(32, 32, seed=12), "PNG")
    start = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[start : start + 4])
    idat = data[start + 8 : start + 8 + length]
    half = length // 2
    first = struct.pack(">I", half) + b"IDAT" + idat[:half]
    first += struct.pack(">I", zlib.crc32(b"IDAT" + idat[:half]))
    second = struct.pack(">I", length - half) + b"\x00\x1b[\x07" + idat[half:] + bytes(4)
    return data[:start] + first + second + data[start + 12 + length :]


def test_decoder_messages_carry_no_file_bytes(client):
    response = post(client, png_with_bad_chunk(), filename="chunk.png")
    message = assert_error(response, 415, "not_an_image")
    assert message.startswith("chunk.png ")
    assert_printable(message)
    assert "\x1b" not in response.text and "\\u001b" not in response.text


def test_echoed_values_are_printable_and_short(client):
    data = encode(photo(16, 16), "PNG")
    name = "evil\x1b[31m\x00\r\nmodel" * 20
    message = assert_error(post(client, data, model=name), 404, "unknown_model")
    assert_printable(message)
    assert "evil [31m model" in message and MODEL in message
    message = assert_error(client.get("/v1/%1b%00x/" + "a" * 500), 404, "not_found")
    assert_printable(message)
    message = assert_error(post(client, data, colormap="\x07" * 300), 422, "invalid_parameter")
    assert_printable(message)


def test_plain_text_removes_bytes_controls_and_length():
    assert plain_text("bad (chunk b'\\x00\\x1b[') here") == "bad (chunk …) here"
    assert plain_text("b\"\\'x\" and Bob's b'x'") == "… and Bob's …"
    assert plain_text("a\x00b\r\nc\x1b[0m") == "a b c [0m"
    long = plain_text("word " * 200, limit=50)
    assert len(long) <= 50 and long.endswith("…")


def test_the_pixel_limit_named_is_the_servers_not_pillows():
    """A header of 20,000 × 10,000 = 200 MP trips Pillow's own bomb check (179 MP)
    before ours: the 413 still names this server's limit."""
    bomb = png_claiming(20_000, 10_000)
    for megapixels, limit in ((40, "40,000,000"), (0.5, "500,000")):
        settings = ServeSettings(device="cpu", max_megapixels=megapixels)
        with TestClient(create_app(settings)) as server:
            message = assert_error(post(server, bomb, filename="bomb.png"), 413, "too_many_pixels")
        assert message.startswith("bomb.png has ") and f"the {limit} this server" in message
        assert PILLOW_LIMIT not in message and "MAX_IMAGE_PIXELS" not in message


@pytest.mark.parametrize("fov", ["1e-320", "0", "0.999", "179.5", "180", "-5", "nan", "inf"])
def test_impossible_fields_of_view_are_422(client, fov):
    data = encode(photo(24, 32, seed=13), "PNG")
    for route in ("/v1/depth", "/v1/effects/obstacle"):
        message = assert_error(post(client, data, route, fov=fov), 422, "invalid_parameter")
        assert "'fov'" in message


def test_the_extreme_fields_of_view_are_served(client):
    for fov, size in (("1", (24, 32)), ("179", (24, 32)), ("179", (64, 8)), ("1", (4, 200))):
        response = post(client, encode(photo(*size, seed=14), "PNG"), fov=fov, format="json")
        # A square-pixel camera 179° across a portrait photo sees more than 179° down:
        # refused as a parameter, never a server error.
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            assert_error(response, 422, "invalid_parameter")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"fps": "1e-300"}, "'fps'"),
        ({"fps": "0.05"}, "'fps'"),
        ({"fps": "241"}, "'fps'"),
        ({"fps": "nan"}, "'fps'"),
        ({"frames": "121"}, "at most 120 frames"),
        ({"frames": "99999999999999999999"}, "at most 120 frames"),
        ({"frames": "0"}, "'frames'"),
        ({"amplitude": "inf"}, "'amplitude'"),
    ],
)
def test_clip_fields_are_bounded(client, fields, words):
    data = encode(photo(24, 32, seed=15), "PNG")
    response = post(client, data, "/v1/effects/parallax", **fields)
    assert words in assert_error(response, 422, "invalid_parameter")


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("obstacle", {"threshold": "inf"}),
        ("obstacle", {"threshold": "nan"}),
        ("obstacle", {"threshold": "1e-320"}),
        ("bokeh", {"aperture": "nan"}),
        ("bokeh", {"aperture": "1e308"}),
        ("bokeh", {"focus_x": "99999999999999999999999", "focus_y": "1"}),
        ("stereo", {"baseline": "-inf"}),
    ],
)
def test_effect_fields_never_make_a_server_error(client, name, fields):
    data = encode(photo(24, 32, seed=16), "PNG")
    response = post(client, data, f"/v1/effects/{name}", **fields)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_printable(assert_error(response, 422, "invalid_parameter"))


# ---- bounded cost ------------------------------------------------------------------------


def test_json_with_the_map_is_refused_above_its_limit(tight_client):
    data = encode(photo(40, 40, seed=17), "PNG")  # 1,600 pixels > 1,000
    for extra in ({"include_depth": "true"}, {"include_color": "true"}):
        response = post(tight_client, data, format="json", **extra)
        message = assert_error(response, 413, "too_many_pixels")
        assert "1,600 pixels" in message and "1,000" in message
        assert "format=npy or png16" in message
    assert post(tight_client, data, format="json").status_code == 200  # statistics only
    assert post(tight_client, data, format="npy").status_code == 200
    # Within the limit the map comes whole, spliced in as base64.
    small = encode(photo(20, 30, seed=18), "PNG")
    body = post(tight_client, small, format="json", include_depth="true").json()
    depth = np.frombuffer(base64.b64decode(body["depth"]), "<f4")
    assert depth.shape == (600,) and body["width"] == 30


def test_a_cached_photo_is_still_held_to_the_json_limit(tight_client):
    data = encode(photo(40, 40, seed=19), "PNG")
    assert post(tight_client, data, format="npy").headers["x-depth-cache"] == "miss"
    response = post(tight_client, data, format="json", include_depth="true")
    assert_error(response, 413, "too_many_pixels")


def test_still_effects_render_large_photos_shrunk(tight_client):
    """1,000-pixel effects: an 80 × 60 photo is rendered at 36 × 27; the request's and
    the report's pixel numbers stay the photo's."""
    data = encode(photo(60, 80, seed=20), "PNG")
    response = post(
        tight_client,
        data,
        "/v1/effects/bokeh",
        format="json",
        focus_x="75",
        focus_y="55",
        aperture="30",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    shown = PILImage.open(io.BytesIO(base64.b64decode(body["image_png"])))
    assert shown.width * shown.height <= 1000 and shown.width / shown.height == pytest.approx(
        80 / 60, rel=0.05
    )
    assert body["report"]["focus_point"] == [75, 55] and body["report"]["aperture_px"] == 30
    assert body["camera"]["width"] == 80  # the depth is the photo's

    centre = post(tight_client, data, "/v1/effects/bokeh", format="json").json()["report"]
    assert abs(centre["focus_point"][0] - 40) <= 2 and abs(centre["focus_point"][1] - 30) <= 2

    outside = post(tight_client, data, "/v1/effects/bokeh", focus_x="80", focus_y="5")
    assert "outside the 80×60 photo" in assert_error(outside, 422, "invalid_parameter")

    stereo = post(tight_client, data, "/v1/effects/stereo", layout="side-by-side")
    pair = PILImage.open(io.BytesIO(stereo.content))
    assert pair.width * pair.height <= 2 * 1000

    report = post(tight_client, data, "/v1/effects/obstacle", threshold="0.3").json()["report"]
    box = report["nearest_box"]
    assert box is not None and 0 <= box["x0"] < box["x1"] <= 80 and 0 <= box["y0"] < box["y1"] <= 60


def test_clips_are_bounded_in_size_and_frames(tight_client):
    import imageio.v3 as iio

    data = encode(photo(60, 80, seed=21), "PNG")
    two = iio.imread(post(tight_client, data, "/v1/effects/parallax", frames="2").content)
    assert two.shape[:3] == (2, 18, 24)  # clip_max_side
    five = iio.imread(post(tight_client, data, "/v1/effects/parallax", frames="5").content)
    assert five.shape[:3] == (5, 17, 23)  # 5 frames of at most 400 pixels: clip_megapixels
    too_many = post(tight_client, data, "/v1/effects/parallax", frames="6")
    assert "at most 5 frames" in assert_error(too_many, 422, "invalid_parameter")


def test_models_lists_every_limit(tight_client):
    assert tight_client.get("/v1/models").json()["limits"] == {
        "max_upload_mb": 20.0,
        "max_megapixels": 40.0,
        "effect_megapixels": 0.001,
        "json_megapixels": 0.001,
        "clip_max_side": 24,
        "clip_max_frames": 5,
        "clip_megapixels": 0.002,
    }


def test_settings_refuse_limits_that_cannot_work():
    for name in ("effect_megapixels", "json_megapixels", "body_timeout_s", "keep_alive_s"):
        for value in (0, -1, float("inf"), float("nan")):
            with pytest.raises(UsageError, match=name):
                ServeSettings(**{name: value})
    with pytest.raises(UsageError, match="clip_max_frames"):
        ServeSettings(clip_max_frames=0)


# ---- headers -----------------------------------------------------------------------------


def assert_secure(response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_every_answer_carries_the_security_headers(client):
    data = encode(photo(16, 16), "PNG")
    answers = [
        client.get("/"),
        client.get("/static/app.js"),
        client.get("/static/style.css"),
        client.get("/openapi.json"),
        client.get("/v1/models"),
        client.get("/healthz"),
        client.get("/no-such-page"),
        post(client, data),
        post(client, data, format="tiff"),
        post(client, b"\0" * 30_000_000),  # refused by the body limit, outside the routes
    ]
    for response in answers:
        assert_secure(response)
    page = answers[0]
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "'unsafe-inline'" not in PAGE_CSP and "'unsafe-eval'" not in PAGE_CSP
    assert answers[-1].status_code == 413 and answers[-1].headers["connection"] == "close"


def test_the_docs_policy_allows_exactly_its_inline_script(client):
    import hashlib

    response = client.get("/docs")
    assert_secure(response)
    policy = response.headers["content-security-policy"]
    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "unsafe-eval" not in policy


def test_a_500_says_connection_close_and_carries_the_headers(monkeypatch):
    app = create_app(ServeSettings(device="cpu"))
    with TestClient(app, raise_server_exceptions=False) as server:
        estimator = app.state.runtime.estimators[MODEL]
        monkeypatch.setattr(estimator, "predict", lambda image: 1 / 0)
        response = post(server, encode(photo(16, 16, seed=22), "PNG"))
    assert_error(response, 500, "internal_error")
    assert response.headers["connection"] == "close"
    assert_secure(response)


# ---- the pool skips abandoned jobs ------------------------------------------------------


def test_a_cancelled_wait_frees_its_slot_and_the_job_never_runs():
    async def scenario() -> None:
        pool = InferencePool(workers=1, queue_size=2)
        release, ran = threading.Event(), []
        first = asyncio.ensure_future(pool.run(lambda: release.wait(30)))
        waiting = asyncio.ensure_future(pool.run(lambda: ran.append("waiting")))
        while pool.stats().waiting < 1:
            await asyncio.sleep(0.001)
        assert pool.stats().running == 1
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert pool.stats().waiting == 0  # freed at once, while the first still runs
        release.set()
        assert await first is True
        await asyncio.sleep(0.05)
        assert ran == [] and pool.stats().running == 0
        pool.shutdown()

    started = time.perf_counter()
    asyncio.run(scenario())
    assert time.perf_counter() - started < 10
