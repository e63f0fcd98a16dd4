"""``depthlens eval``: score models on depth benchmarks with the papers' protocols."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from depthlens.cli.common import (
    BackendOption,
    DeviceOption,
    PrecisionOption,
    WeightsOption,
    _progress_bar,
    err,
    info,
    out,
)
from depthlens.errors import UsageError


def evaluate(
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset",
            "-d",
            help="KIND:PATH, repeatable; nyu, kitti, diode, eth3d, sintel, folder.",
        ),
    ],
    models: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Zoo name or weights path; repeat to compare models."),
    ] = None,
    weights: WeightsOption = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder for results.json and CSVs.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="A paper's scoring: midas, depth_anything, zoedepth or metric3d "
            "(alignment, SILog variant, fewest pixels).",
        ),
    ] = None,
    alignment: Annotated[
        str | None,
        typer.Option(help="depth_from_disparity, disparity, median or none (default: by model)."),
    ] = None,
    crop: Annotated[
        str | None, typer.Option(help="eigen_nyu, garg, eigen_kitti or none (default: dataset's).")
    ] = None,
    max_depth: Annotated[float | None, typer.Option(help="Override the depth cap (m).")] = None,
    kb_crop: Annotated[
        bool,
        typer.Option(
            "--kb-crop", help="Cut KITTI frames to the 352x1216 benchmark crop before predicting."
        ),
    ] = False,
    silog: Annotated[
        str | None, typer.Option(help="SILog variant: zoedepth, depth_anything or metric3d.")
    ] = None,
    device: DeviceOption = "auto",
    backend: BackendOption = "torch",
    precision: PrecisionOption = "fp32",
    cache: Annotated[
        bool, typer.Option(help="Keep predictions in OUTPUT/predictions and reuse them.")
    ] = True,
    save_vis: Annotated[
        bool,
        typer.Option(
            "--save-vis",
            help="Write captioned RGB | prediction | ground truth | error panels to "
            "OUTPUT/vis/MODEL-DATASET.",
        ),
    ] = False,
) -> None:
    """Score a model on depth benchmarks with the papers' protocols; prints a table."""
    import functools
    from typing import Any, cast

    import depthlens
    from depthlens.eval import protocol as protocols
    from depthlens.eval.datasets import open_dataset
    from depthlens.eval.metrics import SILOG_VARIANTS, SilogVariant
    from depthlens.eval.run import evaluate_dataset, markdown_table, write_reports

    if recipe is not None and recipe not in protocols.RECIPES:
        raise UsageError(f"Unknown protocol {recipe!r}; use one of {', '.join(protocols.RECIPES)}.")
    if alignment is not None and alignment not in protocols.ALIGNMENTS:
        raise UsageError(
            f"Unknown alignment {alignment!r}; use one of {', '.join(protocols.ALIGNMENTS)}."
        )
    if silog is not None and silog not in SILOG_VARIANTS:
        raise UsageError(
            f"Unknown SILog variant {silog!r}; use one of {', '.join(SILOG_VARIANTS)}."
        )
    if save_vis and output is None:
        raise UsageError("--save-vis needs -o/--output: the panels are written to OUTPUT/vis.")
    crop_choice = "default" if crop is None else (None if crop == "none" else crop)
    if crop_choice not in ("default", None, *protocols.CROPS):
        raise UsageError(f"Unknown crop {crop!r}; use one of {', '.join(protocols.CROPS)} or none.")
    datasets = [open_dataset(spec) for spec in dataset]
    if kb_crop and any(d.kind != "kitti" for d in datasets):
        raise UsageError("--kb-crop applies to kitti: datasets only.")
    try:  # every protocol is settled before the model loads
        settled = [
            protocols.protocol_for(d.kind, cast(Any, crop_choice), max_depth, kb_crop=kb_crop)
            for d in datasets
        ]
    except ValueError as exc:
        raise UsageError(f"{exc}.") from None
    scoring = protocols.RECIPES[recipe] if recipe is not None else None
    if scoring is not None:  # explicit --alignment / --silog win over the recipe's
        alignment = alignment or scoring.alignment
        silog = silog or scoring.silog
    names: list[str | None] = list(models) if models else [None]  # None: the default model
    if weights is not None and len(names) > 1:
        raise UsageError("--weights names one checkpoint, so it takes a single --model.")
    estimators = [
        depthlens.load_model(name, weights, device, backend=backend, precision=precision)
        for name in names
    ]
    results = []
    for estimator in estimators:
        for data, protocol in zip(datasets, settled, strict=True):
            total = len(data) if limit is None else min(limit, len(data))
            progress = _progress_bar(f"{estimator.name} on {data.kind}", with_rate=True)
            with progress:
                task = progress.add_task("", total=total)
                results.append(
                    evaluate_dataset(
                        estimator,
                        data,
                        protocol,
                        cast(protocols.Alignment | None, alignment),
                        cast(SilogVariant, silog or "zoedepth"),
                        limit,
                        min_pixels=scoring.min_pixels if scoring is not None else 1,
                        on_item=functools.partial(progress.advance, task),
                        cache=output / "predictions" if output is not None and cache else None,
                        save_vis=output / "vis" if output is not None and save_vis else None,
                    )
                )
    out.print(markdown_table(results), highlight=False, markup=False, soft_wrap=True)
    for result in results:
        if result.skipped:
            err.print(
                f"{result.model} on {result.dataset}: {len(result.skipped)} images had too few "
                "valid pixels to score."
            )
    if output is not None:
        for path in write_reports(results, output):
            info(f"wrote {path}")
        for result in results:
            if result.panels is not None:
                info(f"wrote {len(result.rows)} panels to {result.panels}")
