"""The effect tabs of the web page at ``/`` in a real browser.

The same uvicorn server and Chromium as tests/serve/test_page.py (its fixtures). A small
photo is uploaded once per page; each tab resends it to ``POST /v1/effects/{name}`` and
must show what the API answers for the same settings: Blur refocuses where the photo is
clicked (the request carries that pixel), 3D photo shows a GIF, Anaglyph a stereo image,
Obstacles the annotated image and its report in words. Errors show as the API's
sentence, and the tabs work from the keyboard on a 360 px phone screen.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlens.synth.demo import demo_scene
from tests.serve import test_page
from tests.serve.test_page import ARTIFACTS, MODEL, TIMEOUT_MS, shown_bytes, upload

# The real app on a loopback port and the browser, as test_page.py starts them.
server = test_page.server
browser = test_page.browser

HEIGHT, WIDTH = 72, 96


@pytest.fixture(scope="module")
def small_photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("effects") / "room.png"
    Image.fromarray(demo_scene(HEIGHT, WIDTH)).save(path)
    return path


def api_effect(page, server: str, photo: Path, name: str, **fields: str):
    """POST ``photo`` to v1/effects/``name`` straight from Python (the page's context)."""
    multipart: dict = {
        "image": {"name": photo.name, "mimeType": "image/png", "buffer": photo.read_bytes()},
        "model": MODEL,
        **fields,
    }
    return page.request.post(f"{server}/v1/effects/{name}", multipart=multipart)


def is_effect(name: str):
    """A predicate for page.expect_request: a POST to v1/effects/``name``."""
    return lambda request: request.method == "POST" and request.url.endswith(f"/v1/effects/{name}")


def form_fields(request) -> dict[str, str]:
    """The text fields of a multipart request the page sent (the photo part left out)."""
    body = request.post_data_buffer
    assert body, "the request carried no form"
    found = re.findall(rb'name="([^"]+)"\r\n\r\n(.*?)\r\n--', body, re.S)
    return {key.decode(): value.decode() for key, value in found}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def wait_shown(page, name: str, **fields: str) -> None:
    """Wait until effect ``name`` shows the image made with ``fields`` and is idle."""
    attributes = "".join(f'[data-{k.replace("_", "-")}="{v}"]' for k, v in fields.items())
    page.wait_for_selector(f"#{name}-image:not([hidden]){attributes}")
    page.wait_for_selector(f'#view-{name}[aria-busy="false"]', state="attached")


def obstacle_text(report: dict) -> str:
    """The report in the page's words (app.js, obstacleSentences) for a relative model."""
    assert report["unit"] == "nearness" and report["nearest_value"] is not None
    share = int(np.floor(100 * report["near_fraction"] + 0.5))  # Math.round
    return (
        f"Near: {share}% of the view. Nearest: nearness {report['nearest_value']:.2f} "
        "(1 is the nearest part of this photo; not a distance)."
    )


def open_page(browser, server: str, photo: Path, **options):
    """A new page with ``photo`` uploaded and its depth shown."""
    page = browser.new_page(**options)
    page.set_default_timeout(TIMEOUT_MS)
    # Chromium hands playwright the body of a request with a file in it only when the
    # request is routed, so effect requests pass through a route that lets them go on.
    page.route("**/v1/effects/*", lambda route: route.continue_())
    page.goto(server + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    upload(page, photo)
    return page


def test_effect_tabs_show_what_the_api_makes(server, browser, small_photo):
    page = open_page(
        browser, server, small_photo, viewport={"width": 1200, "height": 900}, accept_downloads=True
    )
    ARTIFACTS.mkdir(exist_ok=True)
    assert page.get_attribute("#tab-depth", "aria-selected") == "true"
    assert page.is_visible("#heatmap") and page.is_hidden("#view-bokeh")

    # Blur: the first request lets the server focus on the centre.
    with page.expect_request(is_effect("bokeh")) as first:
        page.click("#tab-bokeh")
    sent = form_fields(first.value)
    assert "focus_x" not in sent and sent["aperture"] == "12" and sent["model"] == MODEL
    wait_shown(page, "bokeh", focus_x="", aperture="12")
    assert page.is_hidden("#view-depth") and page.is_visible("#photo-focus-mark")

    # A click on the photo, shown about 5.5 times its size, asks for the photo's own pixel.
    box = page.locator("#original").bounding_box()
    assert box is not None and box["width"] > 3 * WIDTH
    fx, fy = 0.2, 0.7
    with page.expect_request(is_effect("bokeh")) as clicked:
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    sent = form_fields(clicked.value)
    x, y = int(fx * WIDTH), int(fy * HEIGHT)
    assert (sent["focus_x"], sent["focus_y"]) == (str(x), str(y))
    wait_shown(page, "bokeh", focus_x=str(x), focus_y=str(y))
    expected = api_effect(
        page, server, small_photo, "bokeh", focus_x=str(x), focus_y=str(y), aperture="12"
    )
    assert expected.ok
    shown = pixels(shown_bytes(page, "bokeh-image"))
    np.testing.assert_array_equal(shown, pixels(expected.body()))
    assert f"pixel ({x}, {y})" in page.inner_text("#bokeh-note")

    # The aperture slider asks again, keeping the focus.
    page.focus("#aperture")
    with page.expect_request(is_effect("bokeh")) as wider:
        page.keyboard.press("End")
    assert form_fields(wider.value)["aperture"] == "100"
    assert page.inner_text("#aperture-value") == "100 px"
    wait_shown(page, "bokeh", focus_x=str(x), aperture="100")
    assert page.get_attribute("#bokeh-download", "download") == "room-bokeh.png"
    page.screenshot(path=str(ARTIFACTS / "page-effects-blur.png"), full_page=True)

    # 3D photo: a GIF in an <img>, from an object URL, and a download link for it.
    page.click("#tab-parallax")
    page.fill("#parallax-frames", "4")
    with page.expect_request(
        lambda r: is_effect("parallax")(r) and b"swing" in (r.post_data_buffer or b"")
    ):
        page.select_option("#parallax-path", "swing")
    wait_shown(page, "parallax", path="swing", frames="4")
    assert page.get_attribute("#parallax-image", "src").startswith("blob:")
    gif = shown_bytes(page, "parallax-image")
    assert gif.startswith(b"GIF8")
    clip = Image.open(io.BytesIO(gif))
    assert clip.size == (WIDTH, HEIGHT) and clip.n_frames == 4
    with page.expect_download() as download:
        page.click("#parallax-download")
    assert download.value.suggested_filename == "room-parallax.gif"
    assert Path(download.value.path()).read_bytes() == gif
    page.screenshot(path=str(ARTIFACTS / "page-effects-3d.png"), full_page=True)

    # Anaglyph: the tab asks for the anaglyph layout by default.
    page.click("#tab-stereo")
    wait_shown(page, "stereo", layout="anaglyph")
    expected = api_effect(page, server, small_photo, "stereo", layout="anaglyph")
    assert expected.ok
    np.testing.assert_array_equal(
        pixels(shown_bytes(page, "stereo-image")), pixels(expected.body())
    )
    assert page.get_attribute("#stereo-download", "download") == "room-stereo-anaglyph.png"
    page.screenshot(path=str(ARTIFACTS / "page-effects-anaglyph.png"), full_page=True)

    # Obstacles: the annotated image and the report in words; a relative model's
    # nearness is never written as a distance.
    page.click("#tab-obstacle")
    wait_shown(page, "obstacle", threshold="")
    answer = api_effect(page, server, small_photo, "obstacle")
    assert answer.ok
    body = json.loads(answer.body())
    text = page.inner_text("#obstacle-report")
    assert text == obstacle_text(body["report"])
    assert not re.search(r"\d m\b", text)
    assert page.get_attribute("#obstacle-report", "data-unit") == "nearness"
    np.testing.assert_array_equal(
        pixels(shown_bytes(page, "obstacle-image")), pixels(base64.b64decode(body["image_png"]))
    )
    assert "0.8" in page.get_attribute("#threshold", "placeholder")
    page.screenshot(path=str(ARTIFACTS / "page-effects-obstacles.png"), full_page=True)

    # Back to Depth: the heatmap is still there, and nothing was uploaded again.
    page.click("#tab-depth")
    assert page.is_visible("#heatmap") and page.is_hidden("#view-obstacle")
    assert page.inner_text("#error") == ""
    page.close()


def test_effect_errors_show_as_sentences_and_busy_while_waiting(server, browser, small_photo):
    page = open_page(browser, server, small_photo)
    page.click("#tab-obstacle")
    wait_shown(page, "obstacle", threshold="")

    # Held by the test, the request shows the busy state; let go, the server's 422
    # shows as its sentence.
    held = []
    page.route("**/v1/effects/obstacle", lambda route: held.append(route))
    page.fill("#threshold", "1.5")
    page.press("#threshold", "Enter")
    page.wait_for_selector("#busy:not([hidden])")
    assert page.inner_text("#busy-text") == "Looking for near obstacles…"
    assert page.get_attribute("#view-obstacle", "aria-busy") == "true"
    while not held:
        page.wait_for_timeout(20)
    held[0].continue_()
    page.wait_for_selector("#obstacle-error:not(:empty)")
    answer = api_effect(page, server, small_photo, "obstacle", threshold="1.5")
    assert answer.status == 422
    assert page.inner_text("#obstacle-error") == json.loads(answer.body())["error"]["message"]
    assert page.is_hidden("#busy")
    assert page.get_attribute("#view-obstacle", "aria-busy") == "false"
    page.unroute("**/v1/effects/obstacle")

    # An error answered on the server's behalf: a busy server's 503 and its Retry-After.
    busy_body = {"error": {"status": 503, "code": "busy", "message": "The server is busy."}}
    page.route(
        "**/v1/effects/stereo",
        lambda route: route.fulfill(
            status=503,
            headers={"Retry-After": "2"},
            content_type="application/json",
            body=json.dumps(busy_body),
        ),
    )
    page.click("#tab-stereo")
    page.wait_for_selector("#stereo-error:not(:empty)")
    assert page.inner_text("#stereo-error") == "The server is busy. Try again in 2 s."
    assert page.is_hidden("#stereo-image") and page.is_hidden("#stereo-download")

    # A request that never reaches the server.
    page.route("**/v1/effects/parallax", lambda route: route.abort("connectionrefused"))
    page.click("#tab-parallax")
    page.wait_for_selector("#parallax-error:not(:empty)")
    assert page.inner_text("#parallax-error").startswith("Could not reach the depthlens server")
    assert page.is_hidden("#busy")
    page.close()


def test_effect_tabs_work_from_the_keyboard_on_a_phone(server, browser, small_photo):
    page = open_page(
        browser, server, small_photo, viewport={"width": 360, "height": 740}, has_touch=True
    )
    # Tab reaches the selected tab (only it is in the Tab order).
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('role')") == "tab":
            break
    else:
        pytest.fail("Tab never reached the tab list")
    assert page.evaluate("document.activeElement.id") == "tab-depth"

    # The arrow keys select the next tab and ask for its effect once they rest.
    with page.expect_request(is_effect("bokeh")):
        page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-bokeh"
    assert page.get_attribute("#tab-bokeh", "aria-selected") == "true"
    assert page.get_attribute("#tab-depth", "aria-selected") == "false"
    assert page.is_visible("#view-bokeh") and page.is_hidden("#view-depth")
    wait_shown(page, "bokeh", focus_x="")

    # Tab goes on into the view; on the blurred photo the arrow keys move the focus from
    # the centre the server chose, 2% of the photo per press.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "bokeh-image"
    with page.expect_request(is_effect("bokeh")) as moved:
        page.keyboard.press("ArrowRight")
    sent = form_fields(moved.value)
    assert (sent["focus_x"], sent["focus_y"]) == (str(WIDTH // 2 + 2), str(HEIGHT // 2))
    wait_shown(page, "bokeh", focus_x=str(WIDTH // 2 + 2))

    # End, Home and the arrows wrap around the tab list.
    page.focus("#tab-bokeh")
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.id") == "tab-obstacle"
    wait_shown(page, "obstacle", threshold="")
    assert page.inner_text("#obstacle-report").startswith("Near: ")
    for key, expected in [("ArrowRight", "depth"), ("ArrowLeft", "obstacle"), ("Home", "depth")]:
        page.keyboard.press(key)
        assert page.get_attribute(f"#tab-{expected}", "aria-selected") == "true", key
        assert page.is_visible(f"#view-{expected}")
    page.keyboard.press("Enter")  # a tab is a button: Enter selects it too
    assert page.is_visible("#heatmap")

    # The phone layout: no sideways scrolling with any view, every tab on screen.
    for name in ("obstacle", "bokeh", "depth"):
        page.click(f"#tab-{name}")
        scroll = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert scroll[0] <= scroll[1] == 360, f"{name}: horizontal scroll on a phone: {scroll}"
    for tab in page.locator('[role="tab"]').all():
        box = tab.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    page.click("#tab-obstacle")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-effects-phone.png"), full_page=True)
    page.close()
