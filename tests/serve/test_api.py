"""The REST API of ``depthlens serve``, in process, with the bundled depthlens-small."""

from __future__ import annotations

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

import depthlens
from depthlens.errors import UsageError, WeightsError
from depthlens.serve import FORMATS, ServeSettings, create_app
from depthlens.serve import jobs as serve_jobs
from depthlens.serve.jobs import encode_depth
from depthlens.synth.demo import demo_scene
from depthlens.viz.colormaps import COLORMAPS
from tests.cli import run_cli

MODEL = "depthlens-small"
HEIGHT, WIDTH = 90, 120  # odd sizes: the network sees another size and resizes back


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return demo_scene(HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def photo_png(photo) -> bytes:
    return png_bytes(photo)


@pytest.fixture(scope="module")
def reference(photo) -> depthlens.DepthResult:
    """What the library itself predicts for the photo."""
    return depthlens.load_model(MODEL, device="cpu").predict(photo)


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeSettings(models=(MODEL,), device="cpu", workers=2))) as c:
        yield c


@pytest.fixture(scope="module")
def small_limits_client():
    """A server taking uploads up to 10 kB and images up to 1,000 pixels."""
    settings = ServeSettings(device="cpu", max_upload_mb=0.01, max_megapixels=0.001)
    with TestClient(create_app(settings)) as c:
        yield c


def post_photo(client, data: bytes, filename: str = "street.png", **fields):
    return client.post("/v1/depth", files={"image": (filename, data, "image/png")}, data=fields)


def assert_error(response, status: int, code: str) -> str:
    """The response is the JSON error shape with one sentence and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message"}
    assert body["error"]["status"] == status and body["error"]["code"] == code
    message = body["error"]["message"]
    assert message.endswith(".") and "\n" not in message
    assert "Traceback" not in response.text and 'File "' not in response.text
    return message


# ---- the four formats ----------------------------------------------------------------


@pytest.mark.parametrize("output_format", FORMATS)
def test_every_format_names_model_kind_and_time(client, photo_png, output_format):
    response = post_photo(client, photo_png, format=output_format)
    assert response.status_code == 200, response.text
    assert response.headers["X-Depthlens-Model"] == MODEL
    assert response.headers["X-Depth-Kind"] == "relative_inverse"
    assert float(response.headers["X-Processing-Ms"]) > 0


@pytest.mark.parametrize("colormap", ["inferno", "turbo"])
def test_color_is_the_heatmap_at_the_input_size(client, photo_png, reference, colormap):
    response = post_photo(client, photo_png, colormap=colormap)
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="street-depth.png"'
    heatmap = np.asarray(PILImage.open(io.BytesIO(response.content)))
    assert heatmap.shape == (HEIGHT, WIDTH, 3) and heatmap.dtype == np.uint8
    np.testing.assert_array_equal(heatmap, np.asarray(reference.colorize(colormap)))


def test_png16_maps_back_to_depth_within_one_step(client, photo_png, reference):
    response = post_photo(client, photo_png, format="png16")
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="street-depth16.png"'
    levels = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert levels.dtype == np.uint16 and levels.shape == (HEIGHT, WIDTH)
    low, high = float(response.headers["X-Depth-Min"]), float(response.headers["X-Depth-Max"])
    assert (low, high) == (float(reference.depth.min()), float(reference.depth.max()))
    depth = low + levels / 65535.0 * (high - low)
    assert np.abs(depth - reference.depth).max() <= (high - low) / 65535


def test_npy_is_the_library_prediction(client, photo_png, reference):
    response = post_photo(client, photo_png, filename="C:\\photos\\my street.png", format="npy")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="my_street-depth.npy"'
    depth = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert depth.dtype == np.float32 and depth.shape == (HEIGHT, WIDTH)
    np.testing.assert_allclose(depth, reference.depth, rtol=0, atol=1e-6)


@pytest.mark.parametrize("output_format", ["color", "png16", "npy"])
def test_file_answers_are_encode_depth_of_the_prediction(
    client, photo_png, output_format, monkeypatch
):
    # benchmarks/bench_serve.py's direct peer encodes with encode_depth: the same work.
    encoded = []

    def recording(result, fmt, colormap="inferno"):
        body, headers = encode_depth(result, fmt, colormap)
        encoded.append((result, fmt, body))
        return body, headers

    monkeypatch.setattr(serve_jobs, "encode_depth", recording)
    response = post_photo(client, photo_png, format=output_format)
    [(result, fmt, body)] = encoded
    assert fmt == output_format and response.content == body
    assert result.depth.shape == (HEIGHT, WIDTH)


def test_json_statistics_depth_and_heatmap(client, photo_png, reference):
    response = post_photo(
        client, photo_png, format="json", include_depth="true", include_color="true"
    )
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model"] == MODEL and body["kind"] == "relative_inverse"
    assert body["units"] == "relative" and body["colormap"] == "inferno"
    assert (body["width"], body["height"]) == (WIDTH, HEIGHT)
    values = reference.depth.astype(np.float64)
    assert body["min"] == pytest.approx(values.min()) and body["max"] == pytest.approx(values.max())
    expected = np.percentile(values, [1, 5, 50, 95, 99])
    assert list(body["percentiles"]) == ["p1", "p5", "p50", "p95", "p99"]
    assert list(body["percentiles"].values()) == pytest.approx(expected, rel=1e-6)
    timings = body["timings_ms"]
    assert set(timings) == {"queue", "decode", "inference", "encode", "total"}
    assert all(value >= 0 for value in timings.values())
    assert timings["total"] >= timings["decode"] + timings["inference"]
    depth = np.frombuffer(base64.b64decode(body["depth"]), "<f4").reshape(HEIGHT, WIDTH)
    np.testing.assert_allclose(depth, reference.depth, rtol=0, atol=1e-6)
    heatmap = np.asarray(PILImage.open(io.BytesIO(base64.b64decode(body["color_png"]))))
    np.testing.assert_array_equal(heatmap, np.asarray(reference.colorize("inferno")))


def test_json_leaves_out_depth_and_heatmap_unless_asked(client, photo_png):
    body = post_photo(client, photo_png, format="json", colormap="gray").json()
    assert "depth" not in body and "color_png" not in body
    assert body["colormap"] == "gray"


def test_json_names_the_weights_and_their_hash(client, photo_png, reference):
    """Provenance (issue 15, item 3): the model name alone cannot tell an export from
    the release."""
    import hashlib
    from pathlib import Path

    body = post_photo(client, photo_png, format="json").json()
    assert body["weights"] == reference.weights and body["weights"].endswith(".safetensors")
    expected = hashlib.sha256(Path(body["weights"]).read_bytes()).hexdigest()
    assert body["weights_sha256"] == expected


def test_a_name_without_a_usable_stem_gives_image(client, photo_png):
    response = post_photo(client, photo_png, filename="../..", format="npy")
    assert response.headers["content-disposition"] == 'attachment; filename="image-depth.npy"'


# ---- models, health, page ------------------------------------------------------------


def test_models_lists_the_served_model_and_the_choices(client):
    body = client.get("/v1/models").json()
    assert body["default"] == MODEL
    assert body["models"] == [
        {
            "name": MODEL,
            "kind": "relative_inverse",
            "description": depthlens.MODELS[MODEL].description,
            "loaded": True,
            "needs_prompt_depth": False,
        }
    ]
    assert body["colormaps"] == list(COLORMAPS)
    assert body["formats"] == ["color", "png16", "npy", "json"]
    assert body["limits"] == {
        "max_upload_mb": 20.0,
        "max_megapixels": 40.0,
        "effect_megapixels": 2.0,
        "json_megapixels": 16.0,
        "clip_max_side": 640,
        "clip_max_frames": 120,
        "clip_megapixels": 10.0,
    }


def test_health_reports_models_and_an_idle_queue(client):
    body = client.get("/healthz").json()
    assert body == {
        "status": "ok",
        "models": [MODEL],
        "queue": {"running": 0, "waiting": 0, "capacity": 2 + 8},  # default queue 4 × workers
    }


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/index.html").content == page.content
    assert client.get("/docs").status_code == 200
    assert "/v1/depth" in client.get("/openapi.json").json()["paths"]


# ---- errors --------------------------------------------------------------------------


def test_missing_file_is_400(client):
    message = assert_error(client.post("/v1/depth", data={"format": "json"}), 400, "missing_image")
    assert "'image'" in message
    text_field = client.post("/v1/depth", data={"image": "not a file"})
    assert_error(text_field, 400, "missing_image")


def test_corrupt_or_foreign_files_are_415(client, photo_png):
    truncated = post_photo(client, photo_png[: len(photo_png) // 2], filename="cut.png")
    assert "cut.png" in assert_error(truncated, 415, "not_an_image")
    text = post_photo(client, b"just some words\n", filename="notes.txt")
    assert "notes.txt" in assert_error(text, 415, "not_an_image")
    assert_error(post_photo(client, b"", filename="empty.png"), 415, "not_an_image")


def test_upload_over_the_limit_is_413_whether_announced_or_streamed(small_limits_client):
    big = b"\0" * 200_000
    announced = post_photo(small_limits_client, big)  # Content-Length is refused before reading
    assert "0.01 MB" in assert_error(announced, 413, "upload_too_large")

    boundary = "depthlens-test-boundary"

    def chunks():  # no Content-Length: the body is counted as it streams in
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        for _ in range(20):
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = small_limits_client.post(
        "/v1/depth",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(streamed, 413, "upload_too_large")

    # Just over the file limit but within the form's allowance: the file size decides.
    assert_error(post_photo(small_limits_client, b"\0" * 10_001), 413, "upload_too_large")


def test_too_many_pixels_is_413(small_limits_client):
    small_file = png_bytes(demo_scene(40, 40))  # 1,600 pixels in a file under 10 kB
    assert len(small_file) < 10_000
    message = assert_error(post_photo(small_limits_client, small_file), 413, "too_many_pixels")
    assert "1,600 pixels" in message and "1,000" in message


def test_unknown_model_is_404_naming_the_served_ones(client, photo_png):
    for name in ("no-such-model", "midas-v21-small"):  # unknown, and in the zoo but not served
        message = assert_error(post_photo(client, photo_png, model=name), 404, "unknown_model")
        assert name in message and MODEL in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("colormap", "rainbow"), ("format", "tiff"), ("include_depth", "perhaps")],
)
def test_bad_parameters_are_422(client, photo_png, field, value):
    message = assert_error(
        post_photo(client, photo_png, **{field: value}), 422, "invalid_parameter"
    )
    assert f"'{field}'" in message


def test_unknown_routes_and_methods_answer_in_the_same_shape(client):
    assert "/v2/depth" in assert_error(client.get("/v2/depth"), 404, "not_found")
    assert_error(client.get("/static/no-such-file.js"), 404, "not_found")
    assert_error(client.get("/v1/depth"), 405, "method_not_allowed")


def test_unexpected_failure_is_500_without_details(photo_png, monkeypatch):
    app = create_app(ServeSettings(device="cpu"))
    with TestClient(app, raise_server_exceptions=False) as client:
        estimator = app.state.runtime.estimators[MODEL]

        def broken(image):
            raise RuntimeError("secret detail from /srv/private/path")

        monkeypatch.setattr(estimator, "predict", broken)
        response = post_photo(client, photo_png)
    assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text


# ---- the bounded queue ---------------------------------------------------------------


def test_full_queue_refuses_at_once_while_admitted_requests_finish(photo_png, monkeypatch):
    """One worker and one queue slot: the third concurrent request gets 503 immediately."""
    app = create_app(ServeSettings(device="cpu", workers=1, queue_size=1))
    started, release = threading.Event(), threading.Event()
    with TestClient(app) as client, ThreadPoolExecutor(2) as senders:
        estimator = app.state.runtime.estimators[MODEL]
        predict = estimator.predict

        def blocked_predict(image):
            started.set()
            assert release.wait(timeout=60)
            return predict(image)

        monkeypatch.setattr(estimator, "predict", blocked_predict)
        try:
            first = senders.submit(post_photo, client, photo_png)
            assert started.wait(timeout=60)  # the first request holds the only worker
            second = senders.submit(post_photo, client, photo_png)
            queue = wait_for_queue(client, waiting=1)
            assert queue == {"running": 1, "waiting": 1, "capacity": 2}

            refused = post_photo(client, photo_png)
            assert refused.headers["Retry-After"] == "1"
            assert_error(refused, 503, "busy")
        finally:
            release.set()
        assert first.result(timeout=60).status_code == 200
        assert second.result(timeout=60).status_code == 200
        assert client.get("/healthz").json()["queue"] == {"running": 0, "waiting": 0, "capacity": 2}


def wait_for_queue(client, waiting: int, timeout: float = 60.0) -> dict[str, int]:
    """Poll /healthz until ``waiting`` requests wait for a worker (the second request's
    upload is still being parsed when its sender returns control)."""
    deadline = time.monotonic() + timeout
    while True:
        queue = client.get("/healthz").json()["queue"]
        if queue["waiting"] == waiting or time.monotonic() > deadline:
            return queue
        time.sleep(0.005)


# ---- settings, start-up and the command ------------------------------------------------


def test_settings_refuse_what_cannot_work():
    with pytest.raises(UsageError, match="at least one model"):
        ServeSettings(models=())
    with pytest.raises(UsageError, match="not among the served models"):
        ServeSettings(models=(MODEL,), weights={"midas-v21-small": "x.pt"})
    with pytest.raises(UsageError, match="at least 1 worker"):
        ServeSettings(workers=0)
    assert ServeSettings(models=(MODEL, MODEL), workers=3).models == (MODEL,)
    assert ServeSettings(workers=3).waiting_limit == 12


def test_a_model_without_weights_stops_start_up():
    app = create_app(ServeSettings(models=(MODEL, "midas-v21-small"), device="cpu"))
    with pytest.raises(WeightsError), TestClient(app):
        pass


def test_serve_with_an_unknown_model_exits_2_with_one_sentence(capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("server started"))
    code, stdout, stderr = run_cli(["serve", "--model", "no-such-model"], capsys)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: Unknown model 'no-such-model'")
    assert len(stderr.strip().splitlines()) == 1


def test_serve_loads_models_then_runs_uvicorn(capsys, monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    args = ["serve", "--port", "8123", "--workers", "2", "--queue-size", "3", "--device", "cpu"]
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0 and "http://127.0.0.1:8123" in stdout
    [(app, kwargs)] = calls
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123
    settings = app.state.settings
    # idle keep-alive connections are bounded by the server's own setting (issue 13)
    assert kwargs["timeout_keep_alive"] == settings.keep_alive_s
    assert (settings.models, settings.workers, settings.waiting_limit) == ((MODEL,), 2, 3)
