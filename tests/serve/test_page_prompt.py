"""The depth prompt of prompt-depth models on the web page at ``/`` (issue 19), in Chromium.

The app serves depthlens-small (the default) and a random Prompt Depth Anything
checkpoint in the official layout, as tests/serve/test_prompt_api.py does. Choosing the
prompt model shows a second file field; the page sends the chosen file and scale as the
API's ``prompt_depth`` and ``prompt_scale`` fields and shows the API's metric depth. A run
without a prompt says so and sends nothing, an unusable prompt shows the API's sentence,
and for a normal model the fields are hidden and nothing of the prompt is sent. The same
Chromium as tests/serve/test_page.py (its fixture).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlens.synth.demo import demo_scene
from tests.serve import test_page, test_prompt_api
from tests.serve.live import live_server
from tests.serve.test_page import ARTIFACTS, CHROMIUM, TIMEOUT_MS, shown_bytes
from tests.serve.test_page_effects import form_fields
from tests.serve.test_prompt_api import OTHER, PROMPT_MODEL, prompt_png

browser = test_page.browser
checkpoint = test_prompt_api.checkpoint

HEIGHT, WIDTH = 84, 112


@pytest.fixture(scope="module")
def server(checkpoint, one_torch_thread) -> Iterator[str]:
    """The app with depthlens-small first (the page's default) and the prompt model."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM}); `make test` installs it as root")
    pytest.importorskip("uvicorn")
    from depthlens.serve import ServeSettings, create_app

    settings = ServeSettings(
        models=(OTHER, PROMPT_MODEL), weights={PROMPT_MODEL: checkpoint}, device="cpu"
    )
    with live_server(create_app(settings), lifespan="on") as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The photo, a usable 16-bit PNG prompt (0.6-3.5 m) and one of the wrong shape."""
    folder = tmp_path_factory.mktemp("prompt-page")
    paths = {"photo": folder / "room.png", "prompt": folder / "lidar.png"}
    Image.fromarray(demo_scene(HEIGHT, WIDTH)).save(paths["photo"])
    paths["prompt"].write_bytes(prompt_png(600, 3500))
    paths["narrow"] = folder / "narrow.png"
    paths["narrow"].write_bytes(prompt_png(600, 3500, rows=10, cols=40))
    return paths


def open_page(browser, server: str, width: int = 1200, height: int = 900):
    """The page with its model list loaded; v1/ requests are routed so that playwright
    sees their bodies (Chromium hands over a body with a file in it only then)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.route("**/v1/depth", lambda route: route.continue_())
    page.route("**/v1/effects/*", lambda route: route.continue_())
    page.goto(server + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    return page


def is_post(route: str):
    """A predicate for page.expect_request: a POST to v1/``route``."""
    return lambda request: request.method == "POST" and request.url.endswith(f"/v1/{route}")


def api_post(page, server: str, files: dict[str, Path], prompt: str | None, **fields: str):
    """POST the photo (and prompt file ``prompt``) to v1/depth from Python."""
    multipart: dict = {
        "image": {
            "name": "room.png",
            "mimeType": "image/png",
            "buffer": files["photo"].read_bytes(),
        },
        **fields,
    }
    if prompt is not None:
        data = files[prompt].read_bytes()
        multipart["prompt_depth"] = {
            "name": files[prompt].name,
            "mimeType": "image/png",
            "buffer": data,
        }
    return page.request.post(f"{server}/v1/depth", multipart=multipart)


def probe(page, fx: float, fy: float) -> tuple[int, int, float, str]:
    """Point at (fx, fy) of the heatmap; the pixel, value and sentence the page reads."""
    box = page.locator("#heatmap").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    readout = page.locator("#hover-value")
    x, y = int(readout.get_attribute("data-x")), int(readout.get_attribute("data-y"))
    return x, y, float(readout.get_attribute("data-value")), readout.inner_text()


def test_a_prompt_model_shows_the_depth_of_its_prompt(server, browser, files):
    page = open_page(browser, server)
    assert page.input_value("#model-select") == OTHER and page.is_hidden("#prompt-fields")
    page.select_option("#model-select", PROMPT_MODEL)
    assert page.is_visible("#prompt-input") and page.is_visible("#prompt-scale")
    label = page.inner_text("label[for=prompt-input]")
    assert label == "Depth prompt (LiDAR/ToF): 16-bit PNG in mm or .npy in m"

    # A photo without a prompt: a sentence on the page, and no request.
    posted: list[str] = []
    page.on(
        "request", lambda request: posted.append(request.url) if request.method == "POST" else None
    )
    page.set_input_files("#file-input", str(files["photo"]))
    page.wait_for_selector("#error:not(:empty)")
    assert page.inner_text("#error").startswith(f"Model '{PROMPT_MODEL}' needs a depth prompt")
    assert posted == [] and page.is_hidden("#results") and page.is_hidden("#busy")

    # The prompt goes out as prompt_depth, and the page shows the API's answer to it.
    with page.expect_request(is_post("depth")) as sent:
        page.set_input_files("#prompt-input", str(files["prompt"]))
    # (Playwright sees the parts of a form, not the files in it: the heatmap below is
    # what shows that the file reached the server.)
    assert b'name="prompt_depth"; filename="lidar.png"' in (sent.value.post_data_buffer or b"")
    fields = form_fields(sent.value)
    assert fields["model"] == PROMPT_MODEL and "prompt_scale" not in fields
    page.wait_for_selector(f'#heatmap[data-model="{PROMPT_MODEL}"]')
    assert page.inner_text("#error") == "" and page.inner_text("#depth-kind") == "(meters)"
    expected = api_post(page, server, files, "prompt", model=PROMPT_MODEL, format="color")
    assert expected.ok, expected.text()
    shown = np.asarray(Image.open(io.BytesIO(shown_bytes(page, "heatmap"))).convert("RGB"))
    assert shown.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(
        shown, np.asarray(Image.open(io.BytesIO(expected.body())).convert("RGB"))
    )
    on_screen = np.asarray(Image.open(io.BytesIO(page.locator("#heatmap").screenshot())))
    assert on_screen[..., :3].astype(float).std() > 10, "the heatmap looks blank on screen"

    # The value under the cursor is the API's depth in meters there.
    npy = api_post(page, server, files, "prompt", model=PROMPT_MODEL, format="npy")
    depth = np.load(io.BytesIO(npy.body()))
    x, y, value, text = probe(page, 0.3, 0.6)
    assert value == pytest.approx(float(depth[y, x]), rel=1e-5)
    assert text == f"{value:.2f} m at pixel ({x}, {y})"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-prompt.png"), full_page=True)

    # A scale of 0.002 reads the PNG as twice as far; the model maps the prompt's range
    # onto its output (min/max denormalisation), so every depth doubles.
    with page.expect_request(is_post("depth")) as scaled:
        page.fill("#prompt-scale", "0.002")
        page.press("#prompt-scale", "Enter")
    assert form_fields(scaled.value)["prompt_scale"] == "0.002"
    page.wait_for_selector("#busy", state="hidden")
    _, _, doubled, _ = probe(page, 0.3, 0.6)
    assert doubled == pytest.approx(2 * value, rel=1e-4)

    # An effect tab sends the prompt too.
    with page.expect_request(is_post("effects/obstacle")) as effect:
        page.click("#tab-obstacle")
    assert b'name="prompt_depth"; filename="lidar.png"' in (effect.value.post_data_buffer or b"")
    assert form_fields(effect.value)["prompt_scale"] == "0.002"
    page.wait_for_selector("#obstacle-image:not([hidden])")
    assert page.inner_text("#obstacle-error") == ""
    page.close()


def test_the_prompt_fields_are_hidden_and_unsent_for_a_normal_model(server, browser, files):
    page = open_page(browser, server)
    page.select_option("#model-select", PROMPT_MODEL)
    page.set_input_files("#prompt-input", str(files["prompt"]))
    page.select_option("#model-select", OTHER)
    assert page.is_hidden("#prompt-fields") and page.is_hidden("#prompt-input")
    with page.expect_request(is_post("depth")) as sent:
        page.set_input_files("#file-input", str(files["photo"]))
    body = sent.value.post_data_buffer or b""
    assert b'name="image"' in body and b"prompt_depth" not in body and b"prompt_scale" not in body
    page.wait_for_selector(f'#heatmap[data-model="{OTHER}"]')
    assert page.inner_text("#error") == "" and page.inner_text("#depth-kind") != "(meters)"
    page.close()


def test_an_unusable_prompt_shows_the_api_sentence_on_a_phone(server, browser, files):
    page = open_page(browser, server, width=360, height=740)
    page.select_option("#model-select", PROMPT_MODEL)
    scroll = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll[0] <= scroll[1] == 360, f"the prompt fields scroll sideways: {scroll}"
    page.set_input_files("#prompt-input", str(files["narrow"]))
    page.set_input_files("#file-input", str(files["photo"]))
    page.wait_for_selector("#error:not(:empty)")
    answer = api_post(page, server, files, "narrow", model=PROMPT_MODEL, format="json")
    assert answer.status == 422
    message = json.loads(answer.body())["error"]["message"]
    assert "aspect ratio" in message
    assert page.inner_text("#error") == message
    assert page.is_hidden("#results") and page.is_hidden("#busy")
    page.close()
