"""``predict_files`` at scale: a streamed input list, resumed runs, the report file and a
run that keeps counts only (``input_list``, ``resume``, ``report_file``,
``keep_results``), on the bundled model and tiny images."""

from __future__ import annotations

import json
from pathlib import Path, PurePath

import pytest
from PIL import Image as PILImage

import depthlens
import depthlens.pipeline as pipeline
from depthlens.errors import UsageError
from depthlens.pipeline import (
    SUFFIXES,
    InputResult,
    outputs_complete,
    predict_files,
    report_line,
)
from tests.hostile import photo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def estimator():
    return depthlens.load_model("depthlens-small", device="cpu")


def _image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(photo(48, 64, seed=seed)).save(path)
    return path


def _list(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _tree(root: Path) -> set[str]:
    """Every file under ``root``, relative, as POSIX text."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _stamps(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


# ------------------------------------------------------------------------ the list file


def test_list_lines_keep_their_folders_below_the_output(tmp_path, monkeypatch, estimator):
    work = tmp_path / "work"
    _image(work / "a" / "b.png", 1)
    _image(work / "c.png", 2)
    _image(tmp_path / "up.png", 3)  # named as ../up.png from work/
    absolute = _image(tmp_path / "abs" / "deep" / "d.png", 4)
    listing = _list(
        tmp_path / "list.txt",
        ["# a comment", "a/b.png", "", "   ", "./c.png", "../up.png", str(absolute)],
    )
    monkeypatch.chdir(work)
    out = tmp_path / "out"
    report = predict_files([], out, model=estimator, input_list=listing, formats=["color"])

    assert (report.total, report.done, report.failed) == (4, 4, 0)
    absolute_stem = PurePath(*absolute.with_suffix("").parts[1:]).as_posix()
    expected = {"a/b", "c", "up", absolute_stem}
    assert _tree(out) == {f"{s}{SUFFIXES[k]}" for s in expected for k in ("color", "json")}
    # (an input is named as a path: "./c.png" is "c.png")
    assert [r.input for r in report.results] == ["a/b.png", "c.png", "../up.png", str(absolute)]
    assert report.results[0].written[0] == out.resolve() / "a" / "b-depth.png"


@pytest.mark.parametrize(
    ("line", "relative"),
    [
        ("a/b.jpg", "a/b.jpg"),
        ("./a/./b.jpg", "a/b.jpg"),
        ("a/../b.jpg", "b.jpg"),
        ("../../x/y.png", "x/y.png"),
        ("/data/set/z.png", "data/set/z.png"),
        ("/..", "image"),
    ],
)
def test_listed_relative_folds_dots_and_never_climbs(line, relative):
    assert pipeline.listed_relative(line) == PurePath(relative)


def test_the_list_is_streamed_a_chunk_at_a_time(tmp_path, monkeypatch, estimator):
    monkeypatch.setattr(pipeline, "LIST_CHUNK", 2)
    names = [f"p{i}.png" for i in range(7)]
    for i, name in enumerate(names):
        _image(tmp_path / "in" / name, i)
    listing = _list(tmp_path / "list.txt", [str(tmp_path / "in" / n) for n in names])

    read: list[str] = []
    real = pipeline._list_file

    def counted(path):
        for line in real(path):
            read.append(line)
            yield line

    monkeypatch.setattr(pipeline, "_list_file", counted)
    read_at_result: list[int] = []
    totals: list[int] = []
    report = predict_files(
        [],
        tmp_path / "out",
        model=estimator,
        input_list=listing,
        formats=["npy"],
        batch_size=1,
        on_result=lambda result: read_at_result.append(len(read)),
        on_progress=lambda done, total: totals.append(total),
    )
    assert report.done == len(names)
    # The first result came while most of the list was still unread, and each result
    # was decided before the lines two chunks on were planned.
    assert read_at_result[0] <= 3 < len(names)
    assert all(count <= index + 3 for index, count in enumerate(read_at_result))
    assert read_at_result[-1] == len(names)
    # The total grows as the list is planned.
    assert totals[0] < len(names) and totals[-1] == len(names)
    assert totals == sorted(totals)


def test_clashing_names_get_numbers_across_chunks(tmp_path, monkeypatch, estimator):
    monkeypatch.setattr(pipeline, "LIST_CHUNK", 2)
    monkeypatch.chdir(tmp_path)
    for i, name in enumerate(["a/x.png", "a/x.jpg", "b/y.png", "a/x.gif"]):
        _image(tmp_path / name, i)
    # Chunks: [a/x.png, b/y.png] [a/x.jpg, a/x.png] [a/x.gif]
    lines = ["a/x.png", "b/y.png", "a/x.jpg", "a/x.png", "a/x.gif"]
    listing = _list(tmp_path / "list.txt", lines)
    out = tmp_path / "out"
    report = predict_files([], out, model=estimator, input_list=listing, formats=["npy"])

    assert report.done == len(lines)
    stems = [str(r.written[0].relative_to(out.resolve())) for r in report.results]
    assert [r.input for r in report.results] == lines
    # Within the second chunk a/x.jpg and a/x.png clash on the stem: each keeps its
    # extension; then nothing an earlier chunk took is reused.
    assert len(set(stems)) == len(lines)
    assert stems[0] == "a/x-depth.npy" and stems[1] == "b/y-depth.npy"
    assert stems[2:4] == ["a/x_jpg-depth.npy", "a/x_png-depth.npy"]
    assert stems[4] == "a/x-2-depth.npy"
    assert len(list(out.rglob("*-depth.npy"))) == len(lines)


def test_a_missing_listed_file_fails_alone(tmp_path, monkeypatch, estimator):
    monkeypatch.chdir(tmp_path)
    _image(tmp_path / "good1.png", 1)
    _image(tmp_path / "good2.png", 2)
    listing = _list(tmp_path / "list.txt", ["good1.png", "missing.png", "good2.png"])
    out = tmp_path / "out"
    seen: list[InputResult] = []
    report = predict_files(
        [], out, model=estimator, input_list=listing, formats=["npy"], on_result=seen.append
    )
    assert (report.total, report.done, report.failed) == (3, 2, 1)
    assert [r.input for r in seen] == ["good1.png", "missing.png", "good2.png"]
    failure = seen[1]
    assert failure.error and "missing.png" in failure.error
    assert len(failure.error.strip().splitlines()) == 1
    assert failure.trace is None  # foreseen: no traceback
    assert _tree(out) == {
        "good1-depth.npy",
        "good1-depth.json",
        "good2-depth.npy",
        "good2-depth.json",
    }


def test_a_missing_list_file_is_a_usage_error_before_any_work(tmp_path, estimator):
    with pytest.raises(UsageError, match=r"nowhere\.txt"):
        predict_files([], tmp_path / "out", model=estimator, input_list=tmp_path / "nowhere.txt")
    with pytest.raises(UsageError):
        predict_files([], tmp_path / "out", model=estimator, input_list=tmp_path)  # a folder
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ resume


@pytest.fixture()
def three(tmp_path) -> Path:
    for i, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        _image(tmp_path / "in" / name, i)
    return tmp_path / "in"


def test_resume_skips_complete_outputs_and_redoes_the_rest(three, tmp_path, estimator):
    out = tmp_path / "out"
    first = predict_files([three], out, model=estimator, recursive=True, formats=["color", "npy"])
    assert first.done == 3 and first.skipped == 0
    before = _stamps(out)

    again = predict_files(
        [three],
        out,
        model="depthlens-small",
        recursive=True,
        formats=["color", "npy"],
        resume=True,
    )
    assert (again.total, again.done, again.skipped, again.images) == (3, 3, 3, 0)
    assert all(r.skipped and r.ok for r in again.results)
    assert again.model == ""  # nothing to predict: no model loaded
    assert _stamps(out) == before

    # One output gone: that image alone is redone.
    (out / "sub" / "c-depth.npy").unlink()
    partial = predict_files(
        [three], out, model=estimator, recursive=True, formats=["color", "npy"], resume=True
    )
    assert partial.skipped == 2 and partial.images == 1
    redone = [r for r in partial.results if not r.skipped]
    assert [Path(r.input).name for r in redone] == ["c.png"]
    assert (out / "sub" / "c-depth.npy").is_file()

    # A format no earlier run wrote: every image is redone.
    more = predict_files(
        [three],
        out,
        model=estimator,
        recursive=True,
        formats=["color", "npy", "png16"],
        resume=True,
    )
    assert more.skipped == 0 and more.images == 3
    assert len(list(out.rglob("*-depth16.png"))) == 3


def test_without_resume_everything_is_redone(three, tmp_path, estimator):
    out = tmp_path / "out"
    predict_files([three], out, model=estimator, formats=["npy"])
    again = predict_files([three], out, model=estimator, formats=["npy"])
    assert again.skipped == 0 and again.images == 2


def test_resume_through_a_list_file(tmp_path, monkeypatch, estimator):
    monkeypatch.setattr(pipeline, "LIST_CHUNK", 2)
    monkeypatch.chdir(tmp_path)
    lines = ["a/x.png", "b/x.png", "c.png", "a/x.png"]  # the second a/x.png: a/x-2
    for i, name in enumerate(sorted(set(lines))):
        _image(tmp_path / name, i)
    listing = _list(tmp_path / "list.txt", lines)
    out = tmp_path / "out"
    first = predict_files([], out, model=estimator, input_list=listing, formats=["npy"])
    assert first.done == 4
    (out / "a" / "x-2-depth.npy").unlink()  # the output of the second a/x.png
    second = predict_files(
        [], out, model=estimator, input_list=listing, formats=["npy"], resume=True
    )
    assert (second.skipped, second.images) == (3, 1)
    assert [r.input for r in second.results if not r.skipped] == ["a/x.png"]
    assert (out / "a" / "x-2-depth.npy").is_file()


def test_outputs_complete(tmp_path, estimator):
    _image(tmp_path / "in" / "a.png", 1)
    out = tmp_path / "out"
    predict_files([tmp_path / "in"], out, model=estimator, formats=["color", "npy"])
    stem = out / "a"
    sidecar = out / "a-depth.json"
    assert outputs_complete(stem, ["color", "npy"])
    assert outputs_complete(stem, ["npy"])
    assert not outputs_complete(stem, ["color", "npy", "pfm"])  # not written
    assert not outputs_complete(stem, ["npy"], side_by_side=True)
    assert not outputs_complete(out / "nothing", ["npy"])

    whole = sidecar.read_text()
    sidecar.write_text(whole[: len(whole) // 2])  # torn: not JSON
    assert not outputs_complete(stem, ["npy"])
    for broken in ("[]", '{"files": 5}', '{"no files": []}', "null"):
        sidecar.write_text(broken)
        assert not outputs_complete(stem, ["npy"]), broken
    info = json.loads(whole)
    info["files"].append("a-gone.png")  # lists a file that is not there
    sidecar.write_text(json.dumps(info))
    assert not outputs_complete(stem, ["npy"])
    sidecar.write_text(whole)
    assert outputs_complete(stem, ["npy"])


def test_a_torn_sidecar_is_redone_on_resume(three, tmp_path, estimator):
    out = tmp_path / "out"
    predict_files([three], out, model=estimator, formats=["npy"])
    (out / "b-depth.json").write_text('{"files": ["b-depth.n')
    report = predict_files([three], out, model=estimator, formats=["npy"], resume=True)
    assert [Path(r.input).name for r in report.results if not r.skipped] == ["b.png"]
    assert json.loads((out / "b-depth.json").read_text())["files"]


# ------------------------------------------------------------------------- the report


def test_the_report_file_has_a_line_per_input(three, tmp_path, estimator):
    out = tmp_path / "out"
    predict_files([three / "a.png"], out, model=estimator, formats=["npy"])
    (three / "broken.png").write_text("not an image\n")
    log = tmp_path / "logs" / "run.jsonl"
    seen: list[InputResult] = []
    report = predict_files(
        [three, tmp_path / "none*.png"],
        out,
        model=estimator,
        formats=["npy"],
        resume=True,
        report_file=log,
        on_result=seen.append,
    )
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [report_line(r) for r in seen]  # in the order they were decided
    assert sorted(lines, key=str) == sorted((report_line(r) for r in report.results), key=str)
    status = {Path(line["input"]).name: line["status"] for line in lines}
    assert status == {
        "a.png": "skipped",
        "b.png": "done",
        "broken.png": "failed",
        "none*.png": "failed",
    }
    for line in lines:
        if line["status"] == "failed":
            assert set(line) == {"input", "status", "reason"} and line["reason"]
        else:
            assert set(line) == {"input", "status", "outputs"}
            assert all(Path(p).is_file() for p in line["outputs"])
    done = next(line for line in lines if line["status"] == "done")
    assert sorted(Path(p).name for p in done["outputs"]) == ["b-depth.json", "b-depth.npy"]


def test_report_line_shapes():
    assert report_line(InputResult("x.png", error="It is broken.")) == {
        "input": "x.png",
        "status": "failed",
        "reason": "It is broken.",
    }
    assert report_line(InputResult("x.png", written=(Path("o/x-depth.npy"),))) == {
        "input": "x.png",
        "status": "done",
        "outputs": [str(Path("o/x-depth.npy"))],
    }
    assert report_line(InputResult("x.png", skipped=True))["status"] == "skipped"


def test_keep_results_false_keeps_counts_only(three, tmp_path, estimator):
    out = tmp_path / "out"
    predict_files([three / "a.png"], out, model=estimator, formats=["npy"])
    (three / "broken.png").write_text("not an image\n")
    seen: list[InputResult] = []
    report = predict_files(
        [three],
        out,
        model=estimator,
        formats=["npy"],
        resume=True,
        keep_results=False,
        on_result=seen.append,
    )
    assert report.results == [] and report.failures == []
    assert (report.total, report.done, report.failed, report.skipped, report.images) == (
        3,
        2,
        1,
        1,
        1,
    )
    assert len(seen) == report.total
    assert sum(r.ok for r in seen) == report.done


def test_predict_report_add_counts():
    report = pipeline.PredictReport(model="m", weights="", output_dir=Path("."))
    report.add(InputResult("a", written=(Path("a-depth.npy"),)))
    report.add(InputResult("b", skipped=True), keep=False)
    report.add(InputResult("c", error="Broken."))
    report.add(InputResult("v.mp4", written=(Path("v-depth.mp4"),), frames=5, seconds=2.0))
    assert (report.total, report.done, report.failed, report.skipped) == (4, 3, 1, 1)
    assert (report.images, report.videos, report.frames, report.video_seconds) == (1, 1, 5, 2.0)
    assert [r.input for r in report.results] == ["a", "c", "v.mp4"]
    assert report.failures == [("c", "Broken.")]


def test_unique_stems_stay_unique_across_claims():
    names = pipeline.UniqueStems()
    first = names.claim([PurePath("a/x.png"), PurePath("x.png")])
    second = names.claim([PurePath("a/x.jpg"), PurePath("a/x-2.png"), PurePath("x.png")])
    third = names.claim([PurePath("a/x.png")])
    everything = [*first, *second, *third]
    assert len(set(everything)) == len(everything)
    assert first == [PurePath("a/x"), PurePath("x")]
    assert second[0] == PurePath("a/x-2") and second[2] == PurePath("x-2")
    # A pickled copy (a batch engine's worker) names nothing.
    import pickle

    copy = pickle.loads(pickle.dumps(names))
    assert copy.claim([PurePath("a/x.png")]) == [PurePath("a/x")]


def test_list_file_skips_blanks_and_comments(tmp_path):
    listing = _list(tmp_path / "list.txt", ["#c", "one.png", "", "  two.png  ", "# three.png"])
    assert list(pipeline._list_file(listing)) == ["one.png", "two.png"]


def test_resume_redoes_a_mesh_of_another_format(tmp_path, estimator):
    _image(tmp_path / "in" / "a.png", 1)
    out = tmp_path / "out"
    predict_files([tmp_path / "in"], out, model=estimator, formats=["mesh"], mesh_format="ply")
    again = predict_files(
        [tmp_path / "in"], out, model=estimator, formats=["mesh"], mesh_format="obj", resume=True
    )
    assert again.skipped == 0
    assert (out / "a-mesh.obj").is_file()


def test_a_usage_error_leaves_the_report_file_alone(tmp_path, estimator):
    _image(tmp_path / "a.png", 1)
    listing = _list(tmp_path / "list.txt", [str(tmp_path / "a.png")])
    (tmp_path / "points.csv").write_text("1,1,1\n")
    report = tmp_path / "report.jsonl"
    report.write_text('{"input": "from an earlier run"}\n')
    with pytest.raises(UsageError, match="align-to"):
        predict_files(
            [],
            tmp_path / "out",
            model=estimator,
            input_list=listing,
            align_to=tmp_path / "points.csv",
            report_file=report,
        )
    assert report.read_text() == '{"input": "from an earlier run"}\n'
