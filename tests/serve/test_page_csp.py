"""The page and /docs under their Content-Security-Policy, in Chromium (issue 13).

The policy allows the server's own files and blob: results only; the browser must
report no violation while the page uploads a photo, shows its depth and an effect,
nor while Swagger UI renders /docs and runs a request. A second server renders effects
at a few hundred pixels, so the blurred photo is smaller than the photo: a click on it
must still ask for the focus in the photo's pixels. The same uvicorn server and
Chromium as tests/serve/test_page.py (its fixtures).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from depthlens.synth.demo import demo_scene
from tests.serve import test_page
from tests.serve.live import live_server
from tests.serve.test_page import TIMEOUT_MS, upload
from tests.serve.test_page_effects import wait_shown

server = test_page.server
browser = test_page.browser

HEIGHT, WIDTH = 120, 160
# Records every violation the browser reports, from the first script on.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("csp") / "hall.png"
    Image.fromarray(demo_scene(HEIGHT, WIDTH)).save(path)
    return path


def watched_page(browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(WATCH_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    return page, console


def violations(page, console: list[str]) -> list[str]:
    reported = page.evaluate("window.__violations")
    return reported + [text for text in console if "Content Security Policy" in text]


def test_the_page_works_under_its_policy(server, browser, scene):
    page, console = watched_page(browser)
    response = page.goto(server + "/")
    assert response is not None
    assert "script-src 'self';" in response.headers["content-security-policy"]
    page.wait_for_selector("#model-select:not([disabled])")
    upload(page, scene)
    page.click("#tab-stereo")
    page.wait_for_selector("#stereo-image:not([hidden])")
    assert page.evaluate("document.getElementById('stereo-image').naturalWidth") > 0
    assert violations(page, console) == []
    page.close()


def test_swagger_ui_works_under_its_policy(server, browser):
    page, console = watched_page(browser)
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/v1/models']")
    page.click(".opblock-summary-path[data-path='/v1/models']")
    page.click("text=Try it out")
    page.click("text=Execute")
    page.wait_for_selector(".live-responses-table tbody .response-col_status")
    assert "200" in page.inner_text(".live-responses-table tbody .response-col_status")
    assert violations(page, console) == []
    page.close()


@pytest.fixture(scope="module")
def small_effects_server() -> Iterator[str]:
    """The app with effects rendered at 3,000 pixels at most, on a free port."""

    from depthlens.serve import ServeSettings, create_app

    app = create_app(ServeSettings(device="cpu", effect_megapixels=0.003))
    with live_server(app) as (host, port):
        yield f"http://{host}:{port}"


def test_a_click_on_a_shrunk_blur_focuses_the_photos_pixel(browser, small_effects_server, scene):
    page, _ = watched_page(browser)
    page.goto(small_effects_server + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    upload(page, scene)
    page.click("#tab-bokeh")
    page.wait_for_selector("#bokeh-image:not([hidden])")
    natural = page.evaluate("document.getElementById('bokeh-image').naturalWidth")
    assert natural < WIDTH  # rendered smaller than the photo
    box = page.locator("#bokeh-image").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 0.25 * box["height"])
    # The image made for the click carries the fields it was asked with.
    page.wait_for_selector("#bokeh-image[data-focus-x]:not([data-focus-x=''])")
    wait_shown(page, "bokeh")
    x = int(page.get_attribute("#bokeh-image", "data-focus-x") or -1)
    y = int(page.get_attribute("#bokeh-image", "data-focus-y") or -1)
    assert abs(x - 0.75 * WIDTH) <= 2 and abs(y - 0.25 * HEIGHT) <= 2, (x, y)
    page.close()
