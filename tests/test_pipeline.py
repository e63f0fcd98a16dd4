"""``depthlens.predict_files``: the one files -> outputs path (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import depthlens
from depthlens.errors import UsageError
from depthlens.io.depth_files import read_npy, read_pfm, read_png16
from depthlens.models.estimator import DepthResult
from depthlens.pipeline import InputResult, predict_files
from tests.hostile import hostile_folder, photo


@pytest.fixture(scope="module")
def estimator():
    return depthlens.load_model("depthlens-small", device="cpu")


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    PILImage.fromarray(photo(48, 64, seed=1)).save(tmp_path / "in" / "a.png")
    PILImage.fromarray(photo(40, 30, seed=2)).save(tmp_path / "in" / "sub" / "b.jpg", quality=95)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(10))
    return tmp_path / "in"


def test_files_are_what_the_estimator_predicts(folder, tmp_path, estimator):
    seen: list[InputResult] = []
    progress: list[tuple[int, int]] = []
    report = predict_files(
        [folder],
        tmp_path / "out",
        model=estimator,
        formats="color,png16,pfm,npy",
        recursive=True,
        batch_size=2,
        on_result=seen.append,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert (report.done, report.failed) == (2, 1) and report.model == "depthlens-small"
    # on_result hears each input as it is decided; the report lists them in input order
    assert sorted(r.input for r in seen) == sorted(r.input for r in report.results)
    assert [Path(r.input).name for r in report.results] == ["a.png", "broken.png", "b.jpg"]
    # a first call before any image starts the rate's clock; then one per image
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
    (broken,) = [r for r in report.results if not r.ok]
    assert broken.input.endswith("broken.png") and broken.written == ()
    assert broken.error is not None and "\n" not in broken.error
    for name, stem in (("a.png", "a"), ("sub/b.jpg", "sub/b")):
        expected = estimator.predict(folder / name).depth
        out = tmp_path / "out" / stem
        np.testing.assert_array_equal(read_npy(Path(f"{out}-depth.npy")), expected)
        np.testing.assert_array_equal(read_pfm(Path(f"{out}-depth.pfm")), expected)
        assert read_png16(Path(f"{out}-depth16.png")).shape == expected.shape
        sidecar = json.loads(Path(f"{out}-depth.json").read_text())
        assert sidecar["model"] == "depthlens-small"
        assert set(sidecar["files"]) == {
            Path(f"{out}{s}").name
            for s in ("-depth.png", "-depth16.png", "-depth.pfm", "-depth.npy")
        }
    (a_result,) = [r for r in report.results if r.input.endswith("a.png")]
    assert {p.name for p in a_result.written} == {
        "a-depth.png",
        "a-depth16.png",
        "a-depth.pfm",
        "a-depth.npy",
        "a-depth.json",
    }


def test_a_run_goes_on_past_every_hostile_input(tmp_path, estimator):
    good, bad = hostile_folder(tmp_path / "h")
    report = predict_files([tmp_path / "h"], tmp_path / "out", model=estimator, formats=["npy"])
    by_name = {Path(r.input).name: r for r in report.results}
    assert sorted(by_name) == sorted(good + bad)
    assert all(by_name[name].ok for name in good)
    assert all(not by_name[name].ok for name in bad)
    assert report.failures == [(r.input, r.error) for r in report.results if not r.ok]


def test_a_batch_that_fails_is_retried_image_by_image(tmp_path, estimator):
    class PicksOnWide:
        """Fails any batch holding an image wider than 100 px."""

        name, weights, kind = "picky", "", "relative_inverse"

        def predict_images(self, images, batch_size=4):
            if any(image.width > 100 for image in images):
                raise RuntimeError("out of memory")
            return estimator.predict_images(images, batch_size)

    for index, width in enumerate((64, 200, 64)):
        PILImage.fromarray(photo(48, width, seed=index)).save(tmp_path / f"{index}.png")
    report = predict_files(
        [tmp_path / f"{i}.png" for i in range(3)],
        tmp_path / "out",
        model=PicksOnWide(),  # type: ignore[arg-type]
        formats=["npy"],
        batch_size=3,
    )
    assert [r.ok for r in report.results] == [True, False, True]
    assert "the model failed on it (unexpected RuntimeError: out of memory.)" in (
        report.results[1].error or ""
    )


def test_usage_errors_come_before_any_work(folder, tmp_path):
    for kwargs, words in [
        ({"formats": "color,tiff"}, "Unknown output format tiff"),
        ({"colormap": "rainbow"}, "Unknown colormap"),
        ({"mesh_format": "stl"}, "Unknown mesh format"),
        ({"max_depth": -1.0}, "--max-depth"),
        ({"align_to": tmp_path / "p.csv"}, "one input image"),
    ]:
        with pytest.raises(UsageError, match=words):
            predict_files([folder], tmp_path / "out", recursive=True, **kwargs)
    with pytest.raises(UsageError, match="No images found"):
        (tmp_path / "empty").mkdir()
        predict_files([tmp_path / "empty"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_camera_that_does_not_fit_fails_only_that_image(tmp_path, estimator):
    PILImage.fromarray(photo(48, 64)).save(tmp_path / "small.png")
    PILImage.fromarray(photo(20, 2000)).save(tmp_path / "wide.png")

    def camera(width: int, height: int) -> depthlens.Camera:
        return depthlens.Camera(5.0, 5.0, width / 2, height / 2, width, height).check_physical()

    report = predict_files(
        [tmp_path / "small.png", tmp_path / "wide.png"],
        tmp_path / "out",
        model=estimator,
        formats=["npy"],
        camera=camera,
    )
    assert [r.ok for r in report.results] == [True, False]
    assert "field of view" in (report.results[1].error or "")
    sidecar = json.loads((tmp_path / "out" / "small-depth.json").read_text())
    assert sidecar["fx"] == 5.0 and sidecar["camera_source"] == "user"


def test_geometry_and_alignment_go_through_the_pipeline(tmp_path, estimator):
    PILImage.fromarray(photo(48, 64)).save(tmp_path / "a.png")
    rows = ["u,v,depth_m"] + [f"{u},{v},{2.0 + 0.01 * u}" for u in range(4, 60, 8) for v in (8, 40)]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    report = predict_files(
        tmp_path / "a.png",
        tmp_path / "out",
        model=estimator,
        formats=["npy", "ply"],
        align_to=tmp_path / "points.csv",
    )
    (result,) = report.results
    assert result.ok and result.notes and result.notes[0].startswith("aligned to 14 points")
    sidecar = json.loads((tmp_path / "out" / "a-depth.json").read_text())
    assert sidecar["kind"] == "metric" and sidecar["pointcloud"]["units"] == "m"
    assert (tmp_path / "out" / "a-points.ply").stat().st_size > 0


def test_result_types_are_exported():
    assert depthlens.predict_files is predict_files
    assert DepthResult is depthlens.DepthResult


def test_sidecars_and_reports_name_the_weights_that_made_them(tmp_path, estimator):
    """An export of the bundled architecture says so, not just 'depthlens-small'."""
    import hashlib

    from depthlens.models.weights import describe_weights, save_converted

    PILImage.fromarray(photo(48, 64)).save(tmp_path / "a.png")
    report = predict_files(tmp_path / "a.png", tmp_path / "out", model=estimator, formats=["npy"])
    sidecar = json.loads((tmp_path / "out" / "a-depth.json").read_text())
    bundled = Path(sidecar["weights"])
    assert bundled.name == "depthlens-small.safetensors" and report.weights == str(bundled)
    assert sidecar["weights_sha256"] == hashlib.sha256(bundled.read_bytes()).hexdigest()
    assert describe_weights(report.weights) == "bundled"

    save_converted(estimator.spec, estimator.network, tmp_path / "export")
    exported = depthlens.load_model(tmp_path / "export", device="cpu")
    predict_files(tmp_path / "a.png", tmp_path / "out2", model=exported, formats=["npy"])
    sidecar = json.loads((tmp_path / "out2" / "a-depth.json").read_text())
    assert sidecar["model"] == "depthlens-small" and sidecar["weights"] == str(tmp_path / "export")
    model_file = tmp_path / "export" / "model.safetensors"
    assert sidecar["weights_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert describe_weights(sidecar["weights"]) == str(tmp_path / "export")
