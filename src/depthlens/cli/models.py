"""``depthlens models``, ``convert`` and ``demo``: the zoo, official checkpoints, a first
run without a photo of one's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from depthlens.cli.common import out, say
from depthlens.errors import UsageError
from depthlens.io.depth_files import write_png
from depthlens.io.images import load_image
from depthlens.io.outputs import write_outputs


def list_models() -> None:
    """List the model zoo: family, size, output kind, licence, local weights."""
    from depthlens.errors import WeightsError
    from depthlens.models.registry import MODELS
    from depthlens.models.weights import find_weights

    # Piped output is not cut to the terminal: the names must stay whole for scripts.
    console = out if out.is_terminal else Console(width=200, highlight=False)
    # Names are what people copy: never cut. A narrow terminal drops the family and
    # size columns and says the output kind and weights in a word, instead of wrapping.
    wide = console.width >= 110
    table = Table(show_edge=False, header_style="bold")
    table.add_column("name", no_wrap=True, min_width=max(len(name) for name in MODELS))
    columns = ("family", "params (M)", "output", "licence", "weights here")
    for column in columns if wide else ("output", "licence", "weights"):
        table.add_column(column, no_wrap=True)
    for spec in MODELS.values():
        try:
            origin = find_weights(spec, download=False).origin
        except WeightsError:
            origin = None
        if wide:
            present = f"yes ({origin})" if origin else "no"
            size = f"{spec.params_millions:.1f}"
            table.add_row(spec.name, spec.family, size, spec.kind, spec.licence, present)
        else:
            kind = "relative" if spec.kind == "relative_inverse" else spec.kind
            table.add_row(spec.name, kind, spec.licence, origin or "no")
    console.print(table)


def convert(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="An official .pt/.pth checkpoint.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Zoo name (guessed from the file name).")
    ] = None,
) -> None:
    """Convert an official checkpoint to safetensors + depthlens.json (strictly checked)."""
    from depthlens.models.registry import get_spec, spec_for_official_file
    from depthlens.models.weights import build_network, classify_path, save_converted

    spec = get_spec(model) if model else spec_for_official_file(checkpoint.name)
    if spec is None:
        raise UsageError(f"Cannot tell which model {checkpoint.name} is; pass --model NAME.")
    location = classify_path(checkpoint)
    network = build_network(spec, location)
    save_converted(spec, network, output)
    say(
        f"Wrote {spec.name} to {output} (model.safetensors, depthlens.json); "
        f"load it with depthlens.load_model('{output}')."
    )


def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")] = Path(
        "demo-output"
    ),
) -> None:
    """Render a demo scene, predict its depth with the default model, write the results
    (heatmap, photo | heatmap panel, a depth-of-field blur and an anaglyph).

    The demo never downloads: it uses the default model where its weights are already
    here, else the bundled one."""
    import depthlens
    from depthlens.errors import WeightsError
    from depthlens.models.weights import find_default_weights
    from depthlens.synth.demo import demo_scene

    output.mkdir(parents=True, exist_ok=True)
    scene = demo_scene()
    input_path = output / "input.png"
    write_png(input_path, scene)
    try:
        spec, location = find_default_weights(download=False)
        estimator = depthlens.load_model(spec.name, location.path)
    except WeightsError as exc:
        say(f"Demo input written to {input_path}. No depth predicted: {exc}")
        return
    result = estimator.predict(scene)
    image = load_image(input_path)
    paths = write_outputs(
        image, result.depth, result.kind, output / "input", ["color"], "inferno", True
    )
    from depthlens.effects.apply import EffectSettings, render_still

    for label, name, settings in (
        ("bokeh", "bokeh", EffectSettings()),
        ("anaglyph", "stereo", EffectSettings(layout="anaglyph")),
    ):
        still = render_still(name, scene, result.depth, result.kind, settings)
        paths.append(write_png(output / f"input-{label}.png", still.image))
    say(f"Demo outputs: input {input_path}, " + ", ".join(str(p) for p in paths))
    say(
        "Next: depthlens predict YOUR-PHOTO.jpg -o out/ (depthlens models lists the zoo; "
        "depthlens download depth-anything-v2-small gets real depth on photos)."
    )
