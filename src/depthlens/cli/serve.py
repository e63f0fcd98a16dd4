"""``depthlens serve``: the HTTP service (``depthlens.serve``) under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from depthlens.cli.common import BackendOption, DeviceOption, PrecisionOption, say, verbosity


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Zoo name to serve; repeat for more (the first is the default) "
            "[default: depth-anything-v2-small where its weights can be had, else the "
            "bundled depthlens-small].",
        ),
    ] = None,
    weights: Annotated[
        list[str] | None,
        typer.Option(help="NAME=PATH: weights for a served model (a bare PATH: the first)."),
    ] = None,
    device: DeviceOption = "auto",
    backend: BackendOption = "torch",
    precision: PrecisionOption = "fp32",
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Refuse larger uploads (1 MB = 10^6 bytes).")
    ] = 20.0,
    max_megapixels: Annotated[
        float, typer.Option(min=0.01, help="Refuse larger images (decompression bombs).")
    ] = 40.0,
    workers: Annotated[
        int, typer.Option(min=1, help="Inference threads (they share torch's CPU threads).")
    ] = 1,
    queue_size: Annotated[
        int | None,
        typer.Option(min=0, help="Requests that may wait for a worker [default: 4 × workers]."),
    ] = None,
) -> None:
    """Serve depth over HTTP: a REST API under /v1 (docs at /docs) and a web page at /."""
    import uvicorn

    from depthlens.models.registry import DEFAULT_MODEL
    from depthlens.serve import ServeSettings, create_app, load_models, uvicorn_options

    names = tuple(models or ())
    if weights and not names:
        names = (DEFAULT_MODEL,)  # a bare --weights PATH is for the default model
    settings = ServeSettings(
        models=names or None,  # None: the default model, or the bundled one without it
        weights=_served_weights(weights or [], names),
        device=device,
        backend=backend,
        precision=precision,
        max_upload_mb=max_upload_mb,
        max_megapixels=max_megapixels,
        workers=workers,
        queue_size=queue_size,
    )
    settings = settings.resolved()
    load_models(settings)  # before binding: a bad model or weights stops here, nothing started
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    say(f"Serving {', '.join(settings.served)} at {url} (API docs at {url}/docs); Ctrl+C stops.")
    # --quiet keeps uvicorn to its warnings and errors (no startup or access lines).
    log_level = "warning" if verbosity.quiet else "info"
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        **uvicorn_options(settings),  # idle keep-alive and shutdown bounds
    )


def _served_weights(values: list[str], models: tuple[str, ...]) -> dict[str, Path]:
    """``--weights`` values as {model: path}: ``NAME=PATH``, or a bare PATH for the first."""
    from depthlens.models.registry import MODELS

    chosen: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in MODELS:
            chosen[name] = Path(path)  # ServeSettings refuses it unless the model is served
        else:
            chosen[models[0]] = Path(value)
    return chosen
