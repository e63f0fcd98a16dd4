"""URLs and standard input as image sources, and the --recursive hint (issue 15, item 13):
fetch_url's limits and sentences against a local server, load_image(url),
Estimator.predict(url), predict_files over URLs, read_stdin, find_images."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import depthlens
from depthlens.errors import ImageError, UsageError
from depthlens.io import inputs as inputs_module
from depthlens.io.images import find_images, load_image
from depthlens.io.remote import (
    TIMEOUT_ENV,
    fetch_url,
    is_url,
    read_stdin,
    shown_url,
    url_file_name,
    url_timeout,
)
from depthlens.pipeline import predict_files
from tests.remote_server import SLOW_SECONDS, closed_port, serving

PHOTO = (np.arange(24 * 32 * 3).reshape(24, 32, 3) % 251).astype(np.uint8)


def encoded(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


FILES = {
    "img/photo.png": encoded(PHOTO),
    "other/photo.png": encoded(PHOTO[::-1]),
    "img/folder/": encoded(PHOTO),
    "img/notes.jpg": b"<html>not a picture</html>\n" * 10,
    "img/empty.jpg": b"",
}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Requests to 127.0.0.1 go straight to it whatever proxy the machine names."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def server():
    with serving(FILES) as running:
        yield running


# ---------------------------------------------------------------- names


def test_is_url():
    assert is_url("https://example.com/a.jpg") and is_url("HTTP://example.com/a.jpg")
    assert is_url("ftp://example.com/a.jpg")  # refused with a sentence by fetch_url
    for text in ("photo.jpg", "/tmp/a.jpg", "C://x.jpg", "-", "photos/*.jpg", "a:b.jpg"):
        assert not is_url(text), text


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/a/photo.jpg", "photo.jpg"),
        ("https://example.com/photo.jpg?size=large#top", "photo.jpg"),
        ("https://example.com/my%20photo%3F.jpg", "my_photo_.jpg"),
        ("https://example.com/..%2F..%2Fetc%2Fpasswd", "etc_passwd"),
        ("https://example.com/.hidden.png", "hidden.png"),
        ("https://example.com/", ""),
        ("https://example.com", ""),
        ("https://example.com/..", ""),
        ("https://example.com/" + "x" * 300 + ".jpeg", "x" * 95 + ".jpeg"),
    ],
)
def test_url_file_name(url, name):
    assert url_file_name(url) == name


def test_shown_url_masks_a_password_and_control_characters():
    assert shown_url("https://me:pw@example.com/a.jpg") == "https://me:***@example.com/a.jpg"
    assert shown_url("https://example.com/a\x1b[31m.jpg") == "https://example.com/a?[31m.jpg"
    assert len(shown_url("https://example.com/" + "a" * 500)) == 200


def test_timeout_comes_from_the_environment(monkeypatch):
    assert url_timeout() == 30.0
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    assert url_timeout() == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(UsageError, match=f"{TIMEOUT_ENV} must be a positive number"):
            url_timeout()


# ---------------------------------------------------------------- fetching


def test_load_image_from_a_url(server):
    url = server.url("img/photo.png")
    image = depthlens.load_image(url)
    np.testing.assert_array_equal(image.rgb, PHOTO)
    assert image.source == url


def test_redirects_are_followed_to_http_only(server):
    np.testing.assert_array_equal(load_image(server.url("redirect.jpg")).rgb, PHOTO)
    url = server.url("to-ftp.jpg")
    with pytest.raises(ImageError) as caught:
        fetch_url(url)
    assert str(caught.value) == (
        f"{url} cannot be fetched: it redirects to ftp://depthlens-test.invalid/photo.jpg, "
        "which is not an http(s) URL."
    )


def test_404_is_one_sentence(server):
    url = server.url("missing.jpg")
    with pytest.raises(ImageError) as caught:
        load_image(url)
    assert str(caught.value) == f"{url} cannot be fetched: {server.host} answered 404 Not Found."


def test_silent_server_times_out(server, monkeypatch):
    url = server.url("slow.jpg")
    started = time.monotonic()
    with pytest.raises(ImageError) as caught:
        fetch_url(url, timeout=0.3)
    assert time.monotonic() - started < SLOW_SECONDS
    assert (
        str(caught.value) == f"{url} cannot be fetched: no answer from {server.host} within 0.3 s."
    )
    monkeypatch.setenv(TIMEOUT_ENV, "0.2")  # what load_image and the command use
    with pytest.raises(ImageError, match=r"no answer from .* within 0\.2 s\.$"):
        load_image(url)


def test_content_length_over_the_limit_is_refused_before_reading(server):
    url = server.url("huge.jpg")
    with pytest.raises(ImageError) as caught:
        load_image(url)
    assert str(caught.value) == f"{url} is 60 MB, more than the download limit of 50 MB."


def test_a_body_without_length_is_cut_at_the_limit(server):
    url = server.url("endless.jpg")
    with pytest.raises(ImageError) as caught:
        fetch_url(url, max_bytes=100_000)
    assert str(caught.value) == f"{url} sends more than the download limit of 100,000 bytes."


def test_a_body_shorter_than_announced_is_refused(server):
    url = server.url("short.jpg")
    with pytest.raises(ImageError) as caught:
        fetch_url(url)
    assert str(caught.value) == (
        f"{url} cannot be fetched: {server.host} closed the connection after 10 of 1,000 bytes."
    )


def test_refused_connection():
    url = f"http://127.0.0.1:{closed_port()}/photo.jpg"
    with pytest.raises(ImageError) as caught:
        load_image(url)
    assert str(caught.value) == (
        f"{url} cannot be fetched: {url.split('/')[2]} refused the connection."
    )


def test_unresolvable_host():
    url = "http://depthlens-test.invalid/photo.jpg"  # .invalid never resolves (RFC 6761)
    with pytest.raises(ImageError) as caught:
        load_image(url)
    assert (
        str(caught.value)
        == f"{url} cannot be fetched: could not resolve host depthlens-test.invalid."
    )


def test_not_an_image_and_empty_bodies(server):
    url = server.url("img/notes.jpg")
    with pytest.raises(ImageError, match="is not an image in a format depthlens reads") as caught:
        load_image(url)
    assert str(caught.value).startswith(f"{url} is not an image")
    empty = server.url("img/empty.jpg")
    with pytest.raises(ImageError) as caught:
        load_image(empty)
    assert str(caught.value) == f"{empty} sent 0 bytes, not an image."


def test_only_http_and_https(server):
    with pytest.raises(ImageError) as caught:
        load_image("ftp://example.com/photo.jpg")
    assert str(caught.value) == (
        "ftp://example.com/photo.jpg is not an http:// or https:// URL, "
        "the only kind depthlens fetches."
    )
    with pytest.raises(ImageError, match="is not a valid URL"):
        load_image("http://[::1/photo.jpg")


def test_the_pixel_limit_applies_to_urls(server):
    with pytest.raises(ImageError, match="more than the limit of 100"):
        load_image(server.url("img/photo.png"), max_pixels=100)


def test_estimator_predicts_a_url(server):
    estimator = depthlens.load_model("depthlens-small")
    result = estimator.predict(server.url("img/photo.png"))
    assert result.depth.shape == (24, 32)


# ---------------------------------------------------------------- predict_files


def test_predict_files_names_urls_and_goes_on_past_a_bad_one(server, tmp_path):
    urls = [
        server.url("img/photo.png"),
        server.url("missing.jpg"),
        server.url("other/photo.png"),  # the same file name: must not overwrite the first
        server.url("img/folder/"),  # no file name: url-N
    ]
    report = predict_files(urls, tmp_path / "out", model="depthlens-small", formats=["npy"])
    assert [result.input for result in report.results] == urls
    assert report.done == 3 and report.failed == 1
    assert report.failures == [
        (urls[1], f"{urls[1]} cannot be fetched: {server.host} answered 404 Not Found.")
    ]
    out = tmp_path / "out"
    first, second = np.load(out / "photo-depth.npy"), np.load(out / "photo-2-depth.npy")
    assert first.shape == second.shape == (24, 32) and not np.array_equal(first, second)
    assert (out / "url-4-depth.npy").is_file()
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".npy") == [
        "photo-2-depth.npy",
        "photo-depth.npy",
        "url-4-depth.npy",
    ]


def test_predict_files_reads_standard_input(monkeypatch, tmp_path):
    class Stdin:
        buffer = io.BytesIO(encoded(PHOTO, "JPEG"))

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr("sys.stdin", Stdin())
    report = predict_files(["-"], tmp_path, model="depthlens-small", formats=["npy"])
    assert report.done == 1 and report.results[0].input == "-"
    assert np.load(tmp_path / "stdin-depth.npy").shape == (24, 32)


def test_read_stdin_refuses_empty_terminal_and_oversized_input(monkeypatch):
    with pytest.raises(ImageError) as caught:
        read_stdin(stream=io.BytesIO(b""))
    assert str(caught.value) == "Standard input is empty (0 bytes), not an image."
    with pytest.raises(ImageError) as caught:
        read_stdin(max_bytes=10, stream=io.BytesIO(bytes(11)))
    assert str(caught.value) == "Standard input holds more than the limit of 10 bytes."
    assert read_stdin(max_bytes=10, stream=io.BytesIO(bytes(10))) == bytes(10)

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    with pytest.raises(ImageError, match="Standard input is a terminal"):
        read_stdin()


# ---------------------------------------------------------------- --recursive hint


def write_photo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded(PHOTO))


def test_a_folder_with_images_only_in_subfolders_suggests_recursive(tmp_path):
    write_photo(tmp_path / "trip" / "day1" / "a.png")
    write_photo(tmp_path / "trip" / "day2" / "deeper" / "b.heic")
    (tmp_path / "trip" / "notes.txt").write_text("not an image")
    folder = tmp_path / "trip"
    with pytest.raises(ImageError) as caught:
        find_images([folder], recursive=False)
    assert str(caught.value) == (
        f"No images directly in {folder}; 2 found in its subfolders: pass --recursive."
    )
    assert len(find_images([folder], recursive=True)) == 2


def test_the_hint_stops_counting(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs_module, "_HINT_MAX_IMAGES", 3)
    for index in range(5):
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / "sub" / f"{index}.jpg").write_bytes(b"x")
    with pytest.raises(ImageError, match="; at least 3 found in its subfolders: pass"):
        find_images([tmp_path], recursive=False)


def test_a_folder_without_images_anywhere_gives_nothing(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("no images here")
    assert find_images([tmp_path], recursive=False) == []


def test_predict_files_reports_the_hint_as_the_folders_failure(tmp_path):
    write_photo(tmp_path / "in" / "sub" / "a.png")
    report = predict_files([tmp_path / "in"], tmp_path / "out", model="depthlens-small")
    assert report.failures == [
        (
            str(tmp_path / "in"),
            f"No images directly in {tmp_path / 'in'}; 1 found in its subfolders: "
            "pass --recursive.",
        )
    ]
