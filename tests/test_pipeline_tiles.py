"""``predict_files(tiling=...)``: each image's files hold the library's tiled depth, the
passes are reported, and a run that cannot tile stops before any output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import depthlens
from depthlens.errors import UsageError
from depthlens.io.images import load_image
from depthlens.models.tiling import TileOptions
from depthlens.pipeline import predict_files
from tests.hostile import encode, photo


@pytest.fixture(scope="module")
def model():
    return depthlens.load_model("depthlens-small", device="cpu")


def test_files_hold_the_tiled_depth_and_the_passes_are_reported(tmp_path, model):
    for seed, name in enumerate(["a.png", "b.png"]):
        (tmp_path / name).write_bytes(encode(photo(300, 420, seed=seed)))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    options = TileOptions(2, 0.25, "guided")
    passes: list[tuple[str, int, int]] = []
    report = predict_files(
        [tmp_path / "*.png"],
        tmp_path / "out",
        model=model,
        formats=["npy"],
        tiling=options,
        on_tile_progress=lambda name, done, total: passes.append((Path(name).name, done, total)),
    )
    assert (report.done, report.failed) == (2, 1)  # the broken file is its own line
    for name in ("a", "b"):
        image = load_image(tmp_path / f"{name}.png")
        expected = model.predict_images([image], tiling=options)[0].depth
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{name}-depth.npy"), expected)
        seen = [(done, total) for who, done, total in passes if who == f"{name}.png"]
        assert seen[0][0] == 1 and seen[-1][0] == seen[-1][1] > 1


def test_tiles_with_a_prompt_depth_stop_before_any_output(tmp_path):
    (tmp_path / "a.png").write_bytes(encode(photo(60, 80, seed=1)))
    np.save(tmp_path / "lidar.npy", np.ones((12, 16), np.float32))
    with pytest.raises(UsageError, match="untiled"):
        predict_files(
            [tmp_path / "a.png"],
            tmp_path / "out",
            model="prompt-depth-anything-vits",
            prompt_depth=tmp_path / "lidar.npy",
            tiling=TileOptions(2),
        )
    assert not (tmp_path / "out").exists()
