"""depthlens: monocular depth estimation from the models people trust.

>>> import depthlens
>>> model = depthlens.load_model("depth-anything-v2-small")    # doctest: +SKIP
>>> result = model.predict("photo.jpg")                        # doctest: +SKIP
>>> result.depth.shape, result.kind                            # doctest: +SKIP
((480, 640), 'relative_inverse')
"""

from __future__ import annotations

from pathlib import Path

from depthlens.errors import DepthlensError, UnknownModelError
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image, ImageSource, load_image
from depthlens.models.backends import check_choice, require
from depthlens.models.download import Downloaded, download
from depthlens.models.estimator import DepthResult, Estimator, pick_device
from depthlens.models.registry import (
    DEFAULT_MODEL,
    FALLBACK_MODEL,
    MODELS,
    get_spec,
    spec_for_export,
    spec_for_official_file,
)
from depthlens.models.spec import ModelSpec
from depthlens.models.weights import (
    WeightsLocation,
    build_network,
    classify_path,
    find_default_weights,
    find_weights,
    read_converted_config,
)
from depthlens.pipeline import InputResult, PredictReport, predict_files

__all__ = [
    "DEFAULT_MODEL",
    "FALLBACK_MODEL",
    "MODELS",
    "Camera",
    "DepthResult",
    "DepthlensError",
    "Downloaded",
    "Estimator",
    "Image",
    "InputResult",
    "PredictReport",
    "download",
    "estimate",
    "load_image",
    "load_model",
    "predict_files",
]
__version__ = "0.1.0"

_CACHE: dict[tuple[str, ...], Estimator] = {}


def _resolve(
    model: str | Path | None, weights: str | Path | None
) -> tuple[ModelSpec, WeightsLocation]:
    """The zoo row and weights location for a model name or a path to weights; for no
    model, the default (DEFAULT_MODEL, else the bundled FALLBACK_MODEL)."""
    if model is None:
        if weights is None:
            return find_default_weights()
        model = DEFAULT_MODEL
    name = str(model)
    if name in MODELS:
        spec = MODELS[name]
        return spec, find_weights(spec, Path(weights) if weights is not None else None)
    path = Path(name)
    if not path.exists():
        get_spec(name)  # raises UnknownModelError listing the zoo names
    location = classify_path(path)
    if location.kind == "converted_dir":
        return spec_for_export(read_converted_config(path)), location
    by_file = spec_for_official_file(path.name) if location.kind == "file" else None
    if by_file is None:
        raise UnknownModelError(
            f"Cannot tell which model {path} holds; pass the zoo name, e.g. "
            f"load_model('depth-anything-v2-small', weights='{path}')."
        )
    return by_file, location


def load_model(
    model: str | Path | None = None,
    weights: str | Path | None = None,
    device: str = "auto",
    backend: str = "torch",
    precision: str = "fp32",
) -> Estimator:
    """An Estimator for a zoo name (see ``depthlens.MODELS``) or a path to weights.

    Without ``model``: DEFAULT_MODEL (Depth Anything V2 small) when its weights are
    here or can be downloaded, else the bundled FALLBACK_MODEL with a one-line notice.

    ``weights`` is an official checkpoint, a safetensors file, a folder written by
    ``depthlens convert`` or a Hugging Face model folder; without it the weights are
    looked up (bundled, local caches, Hub). ``backend`` (torch, onnxruntime, openvino)
    and ``precision`` (fp32, bf16, int8, int8-static) choose how the network runs; the pre- and
    post-processing are the same on all. Estimators are cached per process.
    """
    spec, location = _resolve(model, weights)
    torch_device = pick_device(device)
    chosen, bits = check_choice(backend, precision)  # a typo fails before the model loads
    require(chosen)
    key = (spec.name, str(location.path.resolve()), str(torch_device), chosen, bits)
    if key not in _CACHE:
        network = build_network(spec, location)
        _CACHE[key] = Estimator(spec, network, torch_device, str(location.path), chosen, bits)
    return _CACHE[key]


def estimate(
    image: ImageSource | Image,
    model: str | Path | None = None,
    weights: str | Path | None = None,
    device: str = "auto",
) -> DepthResult:
    """One-liner: the depth of ``image`` (path, bytes, PIL image or uint8 array)."""
    return load_model(model, weights, device).predict(image)
