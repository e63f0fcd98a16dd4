"""The web page at ``/`` in a real browser.

Debian's Chromium, driven by playwright (whose own browser download is never used), opens
the real app served by uvicorn on a loopback port: it uploads a rendered street scene,
reads the heatmap and the depth under the cursor, downloads the three files, switches the
colormap, shows an API error as a sentence, and fits a 360 px wide phone screen. The
browser tests skip when Chromium is not installed (``make test`` installs it as root);
the static checks at the top need no browser.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import depthlens
from depthlens.synth.demo import demo_scene
from depthlens.viz.colormaps import COLORMAPS, colormap_lut
from tests.serve.live import live_server

STATIC = Path(depthlens.__file__).parent / "serve" / "static"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MODEL = "depthlens-small"
HEIGHT, WIDTH = 192, 256
TIMEOUT_MS = 20_000


# ---- static checks: no browser --------------------------------------------------------


def legend_stops() -> dict[str, list[tuple[int, ...]]]:
    """COLORMAP_STOPS from app.js, as RGB tuples."""
    source = (STATIC / "app.js").read_text()
    block = re.search(r"const COLORMAP_STOPS = \{(.*?)\n  \};", source, re.S)
    assert block is not None, "app.js has no COLORMAP_STOPS table"
    stops = {}
    for name, body in re.findall(r"(\w+): \[(.*?)\]", block.group(1), re.S):
        colours = re.findall(r'"#([0-9a-f]{6})"', body)
        stops[name] = [tuple(bytes.fromhex(c)) for c in colours]
    return stops


def test_legend_colours_are_the_server_colormaps():
    stops = legend_stops()
    assert set(stops) == set(COLORMAPS)
    for name, colours in stops.items():
        lut = colormap_lut(name).astype(int)
        where = np.rint(np.linspace(0, 255, len(colours))).astype(int)
        error = np.abs(np.array(colours) - lut[where]).max()
        assert error <= 3, f"{name}: legend stops are {error} levels off the colour table"


def test_page_uses_no_external_assets_or_inline_code():
    html = (STATIC / "index.html").read_text()
    css = (STATIC / "style.css").read_text()
    script = (STATIC / "app.js").read_text()
    links = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert links and all(link.startswith("static/") for link in links), links
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "inline style"
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), "inline script"
    assert "url(" not in css and "@import" not in css
    fetched = set(re.findall(r'fetch\("([^"]*)"', script))
    assert fetched == {"v1/models", "v1/depth", "v1/effects/"}
    assert 'name="viewport"' in html and 'capture="environment"' in html


# ---- the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The real app on a free loopback port, served by uvicorn in a background thread."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM}); `make test` installs it as root")
    pytest.importorskip("uvicorn")
    from depthlens.serve.app import ServeSettings, create_app

    app = create_app(ServeSettings(models=(MODEL,)))
    with live_server(app, lifespan="on") as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture(scope="module")
def browser(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("page") / "street.png"
    Image.fromarray(demo_scene(HEIGHT, WIDTH)).save(path)
    return path


def api_depth(page, server: str, photo: Path, **fields: str):
    """POST ``photo`` to v1/depth straight from Python through the page's request context."""
    multipart: dict = {
        "image": {"name": photo.name, "mimeType": "image/png", "buffer": photo.read_bytes()},
        "model": MODEL,
        **fields,
    }
    return page.request.post(f"{server}/v1/depth", multipart=multipart)


def shown_bytes(page, element_id: str) -> bytes:
    """The file an <img> on the page shows, fetched back from its (blob) URL."""
    data = page.evaluate(
        """async (id) => {
            const blob = await (await fetch(document.getElementById(id).src)).blob();
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let text = "";
            for (const b of bytes) text += String.fromCharCode(b);
            return btoa(text);
        }""",
        element_id,
    )
    return base64.b64decode(data)


def heatmap_png(page) -> Image.Image:
    """The PNG the page shows as #heatmap."""
    return Image.open(io.BytesIO(shown_bytes(page, "heatmap")))


def upload(page, photo: Path, colormap: str = "inferno") -> None:
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector(f'#heatmap[data-colormap="{colormap}"]', timeout=TIMEOUT_MS)


def test_page_shows_depth_reads_values_and_downloads(server, browser, photo):
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    assert page.input_value("#model-select") == MODEL
    colormaps = page.eval_on_selector_all("#colormap-select option", "os => os.map(o => o.value)")
    assert colormaps == list(COLORMAPS)

    upload(page, photo)
    assert page.is_visible("#original") and page.is_visible("#heatmap")
    assert re.fullmatch(r"Processed in \d+ ms \(inference \d+ ms\)\.", page.inner_text("#timing"))
    assert page.inner_text("#error") == ""

    # The heatmap is the API's colour PNG at the input size, and the screen shows it.
    shown = heatmap_png(page)
    assert shown.size == (WIDTH, HEIGHT)
    expected = api_depth(page, server, photo, format="color", colormap="inferno")
    assert expected.ok
    np.testing.assert_array_equal(
        np.asarray(shown.convert("RGB")),
        np.asarray(Image.open(io.BytesIO(expected.body())).convert("RGB")),
    )
    on_screen = np.asarray(Image.open(io.BytesIO(page.locator("#heatmap").screenshot())))
    assert on_screen[..., :3].astype(float).std() > 10, "the heatmap looks blank on screen"

    # The value under the cursor is the API's depth at the pixel under the cursor.
    response = api_depth(page, server, photo, format="npy")
    assert response.ok
    depth = np.load(io.BytesIO(response.body()))
    assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
    box = page.locator("#heatmap").bounding_box()
    assert box is not None
    for fx, fy in ((0.3, 0.7), (0.8, 0.25)):
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        readout = page.locator("#hover-value")
        x, y = int(readout.get_attribute("data-x")), int(readout.get_attribute("data-y"))
        assert abs(x - fx * WIDTH) <= 1.5 and abs(y - fy * HEIGHT) <= 1.5, (x, y)
        value = float(readout.get_attribute("data-value"))
        assert value == pytest.approx(float(depth[y, x]), rel=1e-5, abs=1e-6)
        text = readout.inner_text()
        match = re.match(r"relative inverse depth (-?[\d.]+) at pixel \((\d+), (\d+)\)", text)
        assert match, text
        near = depth[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        slack = max(0.006, 0.006 * abs(value))
        assert near.min() - slack <= float(match.group(1)) <= near.max() + slack

    # Downloads: the .npy built in the browser is the API's array; the PNGs have its size.
    with page.expect_download() as download:
        page.click("#download-npy")
    np.testing.assert_array_equal(np.load(download.value.path()), depth)
    with page.expect_download() as download:
        page.click("#download-color")
    assert download.value.suggested_filename == "street-depth.png"
    assert Image.open(download.value.path()).size == (WIDTH, HEIGHT)
    with page.expect_download() as download:
        page.click("#download-png16")
    png16 = Image.open(download.value.path())
    assert png16.size == (WIDTH, HEIGHT) and png16.mode in ("I;16", "I")
    note = page.inner_text("#download-note")
    low, high = (float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", note))
    assert (low, high) == pytest.approx((depth.min(), depth.max()), rel=1e-6)
    assert page.inner_text("#timing").startswith("Processed in")

    # Another colormap re-runs the request: a new heatmap and a new legend.
    legend_before = page.eval_on_selector("#legend", "e => getComputedStyle(e).backgroundImage")
    page.select_option("#colormap-select", "turbo")
    page.wait_for_selector('#heatmap[data-colormap="turbo"]')
    assert not np.array_equal(np.asarray(heatmap_png(page)), np.asarray(shown))
    legend_after = page.eval_on_selector("#legend", "e => getComputedStyle(e).backgroundImage")
    assert legend_after.startswith("linear-gradient") and legend_after != legend_before

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    page.close()


def test_page_shows_api_errors_as_sentences(server, browser, photo, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not an image\n")
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    page.set_input_files("#file-input", str(text_file))
    page.wait_for_selector("#error:not(:empty)")
    shown = page.inner_text("#error")

    answer = page.request.post(
        f"{server}/v1/depth",
        multipart={
            "image": {"name": text_file.name, "mimeType": "text/plain", "buffer": b"x\n"},
            "format": "json",
        },
    )
    assert answer.status in (400, 415, 422)
    assert shown == json.loads(answer.body())["error"]["message"]
    assert "{" not in shown and shown.strip()
    assert page.is_hidden("#results")
    assert page.is_hidden("#busy")

    # A request that never reaches the server gets a sentence too.
    page.route("**/v1/depth", lambda route: route.abort("connectionrefused"))
    page.set_input_files("#file-input", str(photo))
    # (A selector, not wait_for_function: Playwright evaluates that with eval, which the
    # page's Content-Security-Policy forbids.)
    page.wait_for_selector("#error:text-matches('^Could not reach')")
    assert page.is_hidden("#busy")
    page.close()


def test_page_fits_a_phone_and_works_from_the_keyboard(server, browser, photo):
    page = browser.new_page(viewport={"width": 360, "height": 740}, has_touch=True)
    page.set_default_timeout(TIMEOUT_MS)
    # Playwright subscribes to file choosers when the first listener is added, without
    # waiting for the reply (channel_owner.py, fire_and_forget); subscribing now, long
    # before Enter, keeps a real (never answered) dialog from opening in its place.
    page.on("filechooser", lambda chooser: None)
    page.goto(server + "/")
    page.wait_for_selector("#model-select:not([disabled])")

    # Tab reaches the drop zone; Enter opens the file picker.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "drop-zone":
            break
    else:
        pytest.fail("Tab never reached the drop zone")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(photo))
    page.wait_for_selector('#heatmap[data-colormap="inferno"]')

    # The arrow keys move the depth probe on the focused heatmap.
    page.focus("#heatmap")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#hover-value", "data-x") == str(WIDTH // 2 + 5)

    scroll = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll[0] <= scroll[1] == 360, f"horizontal scroll on a phone: {scroll}"
    original = page.locator("#original").bounding_box()
    heatmap = page.locator("#heatmap").bounding_box()
    assert original and heatmap and heatmap["y"] >= original["y"] + original["height"]
    assert page.is_visible("#camera-button")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-phone.png"), full_page=True)
    page.close()


def test_api_docs_render_offline(server, browser):
    """/docs is Swagger UI from the app's own files: it lists the API with no internet."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/v1/depth']")
    assert page.locator(".opblock").count() >= 3
    assert [url for url in requested if not url.startswith((server, "data:"))] == []
    page.close()
