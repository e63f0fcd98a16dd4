"""``depthlens train``, ``pseudo-label`` and ``synth``: training runs and the data they
learn from (a teacher's labels, procedural scenes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from depthlens.cli.common import (
    ActorsOption,
    BackendOption,
    BatchSizeOption,
    CpusPerActorOption,
    DeviceOption,
    EngineOption,
    InputListOption,
    MaxMegapixelsOption,
    PrecisionOption,
    RayAddressOption,
    RecursiveOption,
    ReportOption,
    WeightsOption,
    _progress_bar,
    engine_from_options,
    err,
    say,
)
from depthlens.errors import UsageError
from depthlens.io.images import DEFAULT_MAX_PIXELS


def train(
    config: Annotated[
        Path,
        typer.Argument(metavar="CONFIG", help="Training config (YAML), e.g. configs/bundled.yaml."),
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run from its last checkpoint.")
    ] = False,
    auto_resume: Annotated[
        bool,
        typer.Option(
            "--auto-resume",
            help="Continue from the last checkpoint if there is one, else start "
            "(for torchrun --max-restarts).",
        ),
    ] = False,
    steps: Annotated[int | None, typer.Option(min=1, help="Override the number of steps.")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Override the config's output_dir.")
    ] = None,
    stop_at: Annotated[
        int | None,
        typer.Option("--stop-at", min=1, help="End this session after step N (resumable)."),
    ] = None,
) -> None:
    """Train a depth network from a YAML config; run it under torchrun for several processes."""
    import dataclasses
    import os

    from depthlens.train.config import check_config, load_config
    from depthlens.train.loop import train as run_training

    if resume and auto_resume:
        raise UsageError("Pass --resume or --auto-resume, not both.")
    settings = load_config(config)
    overrides: dict[str, object] = {}
    if steps is not None:
        overrides["steps"] = steps
    if out_dir is not None:
        overrides["output_dir"] = str(out_dir)
    if overrides:
        settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
        check_config(settings, str(config))
    result = run_training(settings, resume="auto" if auto_resume else resume, stop_at=stop_at)
    if os.environ.get("RANK", "0") == "0":
        say(f"Training output: {result}")


def pseudo_label(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the dataset.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Teacher: zoo name or path.")],
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="INPUTS", help="Image files, folders or glob patterns.", show_default=False
        ),
    ] = None,
    weights: WeightsOption = None,
    recursive: RecursiveOption = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    backend: BackendOption = "torch",
    precision: PrecisionOption = "fp32",
    max_megapixels: MaxMegapixelsOption = DEFAULT_MAX_PIXELS / 1e6,
    shards: Annotated[
        int | None,
        typer.Option(min=1, help="Write tar shards of N samples (kind: shards) instead."),
    ] = None,
    input_list: InputListOption = None,
    report: ReportOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    actors: ActorsOption = None,
    cpus_per_actor: CpusPerActorOption = None,
) -> None:
    """Label images with a teacher's relative inverse depth, as a training folder.

    An interrupted run resumes: what the folder (or its shard index) lists is skipped.
    """
    from depthlens.train.pseudo_label import pseudo_label as run_pseudo_label

    if not inputs and input_list is None:
        raise UsageError("Give the images to label: files, folders, globs or --input-list.")
    chosen_engine = engine_from_options(engine, ray_address, actors, cpus_per_actor)
    progress = _progress_bar("label", with_rate=False)
    with progress:
        task = progress.add_task("label", total=None)
        report_ = run_pseudo_label(
            inputs or [],
            output,
            model,
            weights=weights,
            device=device,
            backend=backend,
            precision=precision,
            batch_size=batch_size,
            recursive=recursive,
            max_pixels=int(max_megapixels * 1e6),
            shard_size=shards,
            input_list=input_list,
            engine=chosen_engine,
            report_file=report,
            on_failure=lambda name, reason: err.print(f"failed {name}: {reason}", markup=False),
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    say(
        f"{report_.written} of {report_.total} images labelled by {report_.model} -> {output}"
        + (f"; {report_.skipped} already there" if report_.skipped else "")
        + (f"; {len(report_.failures)} failed" if report_.failures else "")
    )
    if report_.failures:
        raise typer.Exit(1)


def synth(
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many samples.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="RGB-D folder to write (or append to).")
    ],
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT, or one number.")] = "256x256",
    seed: Annotated[int, typer.Option(help="First seed; samples use seed, seed+1, ...")] = 0,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated: indoor,street,landscape,tabletop.")
    ] = None,
    depth_format: Annotated[str, typer.Option("--format", help="Depth files: png16 or npy.")] = (
        "png16"
    ),
    batch_size: Annotated[int, typer.Option(min=1, help="Samples rendered per batch.")] = 16,
    normals: Annotated[bool, typer.Option(help="Also write normals/*.npy.")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Rendering processes (CPU cores).")] = 1,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Render synthetic RGB-D samples (exact depth, normals, intrinsics) into a folder."""
    from depthlens.io.rgbd import DEPTH_FORMATS, RGBDWriter, sample_name
    from depthlens.synth.render import SCENE_KINDS, choose_kind, render_batches

    match = size.lower().split("x")
    if len(match) == 1:
        match = match * 2
    if len(match) != 2 or not all(part.strip().isdigit() for part in match):
        raise UsageError(f"--size must look like 256x192 (WIDTHxHEIGHT), not '{size}'.")
    width, height = (int(part) for part in match)
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        raise UsageError(f"--size {width}x{height} is outside 8..8192 pixels per side.")
    pool = None
    if kinds:
        pool = [k.strip().lower() for k in kinds.split(",") if k.strip()]
        unknown = [k for k in pool if k not in SCENE_KINDS]
        if unknown or not pool:
            raise UsageError(
                f"Unknown scene kind {', '.join(unknown) or '(none)'}: "
                f"choose from {', '.join(SCENE_KINDS)}."
            )
    if depth_format not in DEPTH_FORMATS:
        raise UsageError(
            f"Unknown depth format '{depth_format}': choose from {', '.join(DEPTH_FORMATS)}."
        )
    writer = RGBDWriter(output, depth_format, normals)
    seeds = list(range(seed, seed + count))
    taken = [s for s in seeds if sample_name(choose_kind(s, pool), s) in writer.names]
    if taken:
        raise UsageError(
            f"{output} already holds the sample of seed {taken[0]} ({len(taken)} of these "
            "seeds in all): pass another --seed or another folder."
        )
    start = time.perf_counter()
    progress = _progress_bar("synth", with_rate=True)
    with progress:
        task = progress.add_task("synth", total=count)
        for batch in render_batches(seeds, height, width, pool, batch_size, workers, device):
            writer.write(batch)
            progress.advance(task, len(batch))
    elapsed = time.perf_counter() - start
    say(
        f"Wrote {count} samples ({width}x{height}, seeds {seeds[0]}..{seeds[-1]}) to {output} "
        f"in {elapsed:.1f} s ({count / max(elapsed, 1e-9):.1f} samples/s); "
        f"read it with depthlens.io.rgbd.RGBDFolder('{output}')."
    )
