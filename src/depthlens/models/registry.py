"""The model zoo: one table of ModelSpec rows, keyed by the name users type.

Preprocessing constants come from each family's official inference code:
- MiDaS v2.1 small: isl-org/MiDaS: midas/model_loader.py (``midas_v21_small_256``:
  256x256, ``upper_bound``, multiple of 32, INTER_CUBIC, ImageNet mean/std) and
  run.py::process (bicubic, align_corners=False back to the image size).
- DPT / MiDaS v3: isl-org/MiDaS: midas/model_loader.py (``dpt_large_384``,
  ``dpt_hybrid_384``: 384, ``minimal``, multiple of 32, mean = std = 0.5) and run.py.
- Depth Anything V1: LiheYoung/Depth-Anything: run.py (518, ``lower_bound``, multiple
  of 14, INTER_CUBIC, ImageNet; bilinear, align_corners=False back).
- Depth Anything V2 (relative and metric): DepthAnything/Depth-Anything-V2:
  depth_anything_v2/dpt.py::image2tensor and ::infer_image (same input rule; bilinear,
  align_corners=True back); metric max depth 20 m (Hypersim) / 80 m (VKITTI) from
  metric_depth/README.md.
- Metric3D v2: YvanYin/Metric3D: hubconf.py (fit inside 616x1064, pad with the mean
  colour, 0-255 normalisation; unpad, bilinear back, depth x fx x scale / 1000, clamp
  to 300 m), done by models/metric3d.py's HOOKS rather than the generic InputPolicy.
- Depth Pro: apple/ml-depth-pro: src/depth_pro/depth_pro.py (1536 x 1536 bilinear,
  [-1, 1]; canonical inverse depth x width / focal, bilinear back, 1 / clamp), done by
  models/depth_pro.py's HOOKS.
"""

from __future__ import annotations

import difflib
from dataclasses import replace

from depthlens.errors import UnknownModelError
from depthlens.models.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputPolicy,
    ModelSpec,
    OutputPolicy,
    WeightSource,
)

# The model used when none is named: real depth on photos, small enough for a CPU
# (Apache-2.0). Where its weights are neither here nor downloadable, the bundled
# FALLBACK_MODEL (a layout prior, trained by depthlens on synthetic rooms) is used.
DEFAULT_MODEL = "depth-anything-v2-small"
FALLBACK_MODEL = "depthlens-small"
# The model `depthlens camera` uses when none is named: the smallest zoo row that
# estimates the camera (35 M parameters), under MIT, where Depth Pro is 952 M at a fixed
# 1536 px input under Apple's sample-code licence.
DEFAULT_CAMERA_MODEL = "moge-2-vits-normal"

# The network input side depthlens-small-metric was trained at (configs/metric-canonical.yaml).
METRIC_SMALL_SIZE = 128
MIDAS_SMALL_INPUT = InputPolicy(
    size=(256, 256),
    method="upper_bound",
    keep_aspect=True,
    multiple_of=32,
    interpolation="cubic",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
DPT_INPUT = InputPolicy(
    size=(384, 384),
    method="minimal",
    keep_aspect=True,
    multiple_of=32,
    interpolation="cubic",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)
DEPTH_ANYTHING_INPUT = InputPolicy(
    size=(518, 518),
    method="lower_bound",
    keep_aspect=True,
    multiple_of=14,
    interpolation="cubic",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
MIDAS_OUTPUT = OutputPolicy(mode="bicubic", align_corners=False)
DA_V1_OUTPUT = OutputPolicy(mode="bilinear", align_corners=False)
DA_V2_OUTPUT = OutputPolicy(mode="bilinear", align_corners=True)

_MIDAS_RELEASES = "https://github.com/isl-org/MiDaS/releases/download"
_HF = "https://huggingface.co"
_DA_SIZES = {
    "small": ("vits", "Small", 24.8),
    "base": ("vitb", "Base", 97.5),
    "large": ("vitl", "Large", 335.3),
}


def _midas_rows() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="midas-v21-small",
            family="midas_small",
            variant="v21-small-256",
            description="MiDaS v2.1 small: EfficientNet-Lite3 encoder + MiDaS decoder",
            input=MIDAS_SMALL_INPUT,
            output=MIDAS_OUTPUT,
            kind="relative_inverse",
            weights=WeightSource(
                official_file="midas_v21_small_256.pt",
                url=f"{_MIDAS_RELEASES}/v2_1/midas_v21_small_256.pt",
            ),
            licence="MIT",
            params_millions=21.3,
        ),
        ModelSpec(
            name="dpt-large",
            family="dpt",
            variant="large-384",
            description="MiDaS v3.0 DPT-Large: ViT-L/16 + DPT decoder",
            input=DPT_INPUT,
            output=MIDAS_OUTPUT,
            kind="relative_inverse",
            weights=WeightSource(
                official_file="dpt_large_384.pt",
                url=f"{_MIDAS_RELEASES}/v3/dpt_large_384.pt",
                hub_id="Intel/dpt-large",
            ),
            licence="MIT",
            params_millions=344.1,
        ),
        ModelSpec(
            name="dpt-hybrid",
            family="dpt",
            variant="hybrid-384",
            description="MiDaS v3.0 DPT-Hybrid: ResNet-50 + ViT-B/16 + DPT decoder",
            input=DPT_INPUT,
            output=MIDAS_OUTPUT,
            kind="relative_inverse",
            weights=WeightSource(
                official_file="dpt_hybrid_384.pt",
                url=f"{_MIDAS_RELEASES}/v3/dpt_hybrid_384.pt",
                hub_id="Intel/dpt-hybrid-midas",
            ),
            licence="MIT",
            params_millions=123.1,
        ),
    ]


def _bundled_rows() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="depthlens-small",
            family="midas_small",
            variant="depthlens-small",
            description="depthlens' bundled model: EfficientNet-Lite0 + MiDaS decoder, "
            "trained on depthlens' synthetic scenes",
            # Trained at 256 px crops with ImageNet statistics, so it takes MiDaS-small's
            # input rule and resize back.
            input=MIDAS_SMALL_INPUT,
            output=MIDAS_OUTPUT,
            kind="relative_inverse",
            weights=WeightSource(bundled="depthlens-small.safetensors"),
            licence="MIT",
            params_millions=5.9,
        ),
        ModelSpec(
            name="depthlens-small-metric",
            family="midas_small",
            variant="depthlens-small-metric",
            description="depthlens-small trained for metric depth at a canonical camera "
            "(f = 1000 px) on depthlens' synthetic scenes",
            # Trained on whole 256 px renders shrunk to the network size (configs/
            # metric-canonical.yaml), so it runs at that size.
            input=replace(MIDAS_SMALL_INPUT, size=(METRIC_SMALL_SIZE, METRIC_SMALL_SIZE)),
            output=MIDAS_OUTPUT,
            kind="metric",
            weights=WeightSource(bundled="depthlens-small-metric.safetensors"),
            licence="MIT",
            params_millions=5.9,
            canonical_focal=1000.0,
        ),
    ]


def _depth_anything_rows() -> list[ModelSpec]:
    rows = []
    for size, (enc, cap, params) in _DA_SIZES.items():
        rows.append(
            ModelSpec(
                name=f"depth-anything-{size}",
                family="depth_anything",
                variant=f"v1-{size}",
                description=f"Depth Anything V1 {cap}: DINOv2 {enc.upper()}/14 + DPT head",
                input=DEPTH_ANYTHING_INPUT,
                output=DA_V1_OUTPUT,
                kind="relative_inverse",
                weights=WeightSource(
                    official_file=f"depth_anything_{enc}14.pth",
                    url=f"{_HF}/spaces/LiheYoung/Depth-Anything/resolve/main/checkpoints/"
                    f"depth_anything_{enc}14.pth",
                    hub_id=f"LiheYoung/depth-anything-{size}-hf",
                ),
                licence="Apache-2.0",
                params_millions=params,
            )
        )
    # V2 Small is Apache-2.0; Base and Large are CC-BY-NC-4.0
    # (DepthAnything/Depth-Anything-V2: README.md, "LICENSE").
    for size, (enc, cap, params) in _DA_SIZES.items():
        licence = "Apache-2.0" if size == "small" else "CC-BY-NC-4.0"
        rows.append(
            ModelSpec(
                name=f"depth-anything-v2-{size}",
                family="depth_anything",
                variant=f"v2-{size}",
                description=f"Depth Anything V2 {cap}: DINOv2 {enc.upper()}/14 + DPT head",
                input=DEPTH_ANYTHING_INPUT,
                output=DA_V2_OUTPUT,
                kind="relative_inverse",
                weights=WeightSource(
                    official_file=f"depth_anything_v2_{enc}.pth",
                    url=f"{_HF}/depth-anything/Depth-Anything-V2-{cap}/resolve/main/"
                    f"depth_anything_v2_{enc}.pth",
                    hub_id=f"depth-anything/Depth-Anything-V2-{cap}-hf",
                ),
                licence=licence,
                params_millions=params,
            )
        )
        for scene, dataset, max_depth in (("indoor", "hypersim", 20), ("outdoor", "vkitti", 80)):
            hub_name = f"Depth-Anything-V2-Metric-{dataset.capitalize()}-{cap}"
            if dataset == "vkitti":
                hub_name = f"Depth-Anything-V2-Metric-VKITTI-{cap}"
            rows.append(
                ModelSpec(
                    name=f"depth-anything-v2-metric-{scene}-{size}",
                    family="depth_anything",
                    variant=f"v2-metric-{scene}-{size}",
                    description=f"Depth Anything V2 {cap} metric {scene} "
                    f"(fine-tuned on {dataset}, max {max_depth} m)",
                    input=DEPTH_ANYTHING_INPUT,
                    output=DA_V2_OUTPUT,
                    kind="metric",
                    weights=WeightSource(
                        official_file=f"depth_anything_v2_metric_{dataset}_{enc}.pth",
                        url=f"{_HF}/depth-anything/{hub_name}/resolve/main/"
                        f"depth_anything_v2_metric_{dataset}_{enc}.pth",
                        hub_id=f"depth-anything/Depth-Anything-V2-Metric-{scene.capitalize()}"
                        f"-{cap}-hf",
                    ),
                    licence=licence,
                    params_millions=params,
                )
            )
    return rows


def _metric3d_rows() -> list[ModelSpec]:
    # Metric3D letterboxes onto 616 x 1064 itself (models/metric3d.py::preprocess, from
    # YvanYin/Metric3D: hubconf.py); the InputPolicy below only records that canvas and
    # the normalisation, which equals ImageNet's on 0-255 (123.675 = 0.485 x 255, ...).
    rows = []
    for size, cap, params in (("small", "ViT-S", 37.5), ("large", "ViT-L", 411.9)):
        rows.append(
            ModelSpec(
                name=f"metric3d-v2-{size}",
                family="metric3d",
                variant=f"v2-{size}",
                description=f"Metric3D v2 {cap}: DINOv2-reg {cap}/14 + RAFT-DPT decoder "
                "(metric depth, confidence, normals)",
                input=InputPolicy(
                    size=(616, 1064),
                    method="upper_bound",
                    keep_aspect=True,
                    multiple_of=1,
                    interpolation="linear",
                    mean=IMAGENET_MEAN,
                    std=IMAGENET_STD,
                ),
                output=OutputPolicy(mode="bilinear", align_corners=False),
                kind="metric",
                weights=WeightSource(
                    official_file=f"metric_depth_vit_{size}_800k.pth",
                    url=f"{_HF}/JUGGHM/Metric3D/resolve/main/metric_depth_vit_{size}_800k.pth",
                ),
                licence="BSD-2-Clause",
                params_millions=params,
            )
        )
    return rows


def _moge_rows() -> list[ModelSpec]:
    # MoGe-2 sizes its input itself (models/moge.py::preprocess, from microsoft/MoGe:
    # moge/model/v2.py::infer and forward: 3600 ViT tokens in the image's aspect ratio,
    # bilinear antialiased, ImageNet mean/std); the InputPolicy below only records the
    # square case (60 x 60 tokens of 14 px). Hub ids, licence (MIT) and parameter counts
    # (35 M, 104 M, 331 M) from microsoft/MoGe: README.md; each Hub repo holds one
    # model.pt (its model_config and state dict), saved here under the row's name.
    rows = []
    for size, cap, params in (
        ("vits", "ViT-S", 35.1),
        ("vitb", "ViT-B", 104.7),
        ("vitl", "ViT-L", 330.9),
    ):
        repo = f"Ruicheng/moge-2-{size}-normal"
        rows.append(
            ModelSpec(
                name=f"moge-2-{size}-normal",
                family="moge",
                variant=f"v2-{size}-normal",
                description=f"MoGe-2 {cap}: DINOv2 {cap}/14 + conv heads (metric point map, "
                f"depth, normals, mask and camera; Hub {repo})",
                input=InputPolicy(
                    size=(840, 840),
                    method="minimal",
                    keep_aspect=True,
                    multiple_of=14,
                    interpolation="linear",
                    mean=IMAGENET_MEAN,
                    std=IMAGENET_STD,
                ),
                output=OutputPolicy(mode="bilinear", align_corners=False),
                kind="metric",
                weights=WeightSource(
                    official_file=f"moge-2-{size}-normal.pt",
                    url=f"{_HF}/{repo}/resolve/main/model.pt",
                ),
                licence="MIT",
                params_millions=params,
                estimates_camera=True,
            )
        )
    return rows


def _depth_pro_rows() -> list[ModelSpec]:
    # apple/ml-depth-pro (9efe5c1): a fixed 1536 x 1536 input, bilinear, [-1, 1]
    # (depth_pro.py::create_model_and_transforms and DepthPro.infer), done by
    # models/depth_pro.py's HOOKS; the InputPolicy records that size and normalisation.
    # Licence: the repo's LICENSE is Apple's sample-code licence, and its README puts the
    # weights under the same LICENSE (the Hub's apple/DepthPro-hf card says apple-amlr).
    # Parameters: 951,991,330 in the official layout (tests/models/test_depth_pro.py).
    return [
        ModelSpec(
            name="depth-pro",
            family="depth_pro",
            variant="default",
            description="Depth Pro: multi-scale DINOv2 ViT-L/16 + DPT decoder + field-of-view "
            "head (metric depth, estimates the focal length)",
            input=InputPolicy(
                size=(1536, 1536),
                method="minimal",
                keep_aspect=False,
                multiple_of=1,
                interpolation="linear",
                mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5),
            ),
            output=OutputPolicy(mode="bilinear", align_corners=False),
            kind="metric",
            weights=WeightSource(
                official_file="depth_pro.pt",
                url="https://ml-site.cdn-apple.com/models/depth-pro/depth_pro.pt",
                hub_id="apple/DepthPro-hf",
            ),
            licence="Apple-ASCL",
            params_millions=952.0,
            estimates_camera=True,
        )
    ]


def _prompt_depth_anything_rows() -> list[ModelSpec]:
    # DepthAnything/PromptDA (b05523c): README.md ("Pre-trained Models": Hub repos
    # depth-anything/prompt-depth-anything-vit{s,l}, file model.ckpt, 25.1 M / 340 M;
    # Apache-2.0 on the Hub cards), promptda/utils/io_wrapper.py::load_image (longest side
    # down to 1008, multiples of 14, INTER_AREA) and promptda.py (ImageNet mean/std): done
    # by models/prompt_depth_anything.py's HOOKS; the InputPolicy records the size rule.
    # Parameters: tests/models/test_prompt_depth_anything.py counts the real configs.
    rows = []
    for size, params in (("vits", 25.1), ("vitl", 340.0)):
        rows.append(
            ModelSpec(
                name=f"prompt-depth-anything-{size}",
                family="prompt_depth_anything",
                variant=size,
                description=f"Prompt Depth Anything {size[3:].upper()}: DINOv2 ViT + DPT head "
                "prompted by low-res metric depth (e.g. iPhone LiDAR; needs a depth prompt)",
                input=InputPolicy(
                    size=(1008, 1008),
                    method="upper_bound",
                    keep_aspect=True,
                    multiple_of=14,
                    interpolation="linear",  # INTER_AREA in the hooks
                    mean=IMAGENET_MEAN,
                    std=IMAGENET_STD,
                ),
                output=OutputPolicy(mode="bilinear", align_corners=False),
                kind="metric",
                weights=WeightSource(
                    # the Hub file is model.ckpt; promptda.py's default ckpt_path names it
                    official_file=f"promptda_{size}.ckpt",
                    url=f"{_HF}/depth-anything/prompt-depth-anything-{size}/resolve/main/model.ckpt",
                    hub_id=f"depth-anything/prompt-depth-anything-{size}-hf",
                ),
                licence="Apache-2.0",
                params_millions=params,
                takes_prompt_depth=True,
            )
        )
    return rows


def _zoedepth_rows() -> list[ModelSpec]:
    # isl-org/ZoeDepth (d87f17b, MIT): release v1.0 assets ZoeD_M12_{N,K,NK}.pt, Hub
    # Intel/zoedepth-*; reflect padding, a "minimal" resize to multiples of 32 around
    # img_size (384 x 512; 384 x 768 for K), bilinear align_corners=True, mean = std = 0.5,
    # bicubic back and unpadded: done by models/zoedepth.py's HOOKS, the InputPolicy
    # records the rule. Parameters: the official layout (tests/models/test_zoedepth.py).
    rows = []
    for variant, tag, what, size, params in (
        ("nyu", "N", "fine-tuned on NYU Depth v2, indoor, max 10 m", (384, 512), 344.8),
        ("kitti", "K", "fine-tuned on KITTI, outdoor, max 80 m", (384, 768), 344.8),
        ("nyu-kitti", "NK", "NYU and KITTI bins heads, routed per image", (384, 512), 346.1),
    ):
        rows.append(
            ModelSpec(
                name=f"zoedepth-{variant}",
                family="zoedepth",
                variant=variant,
                description=f"ZoeDepth M12-{tag}: BEiT-L/16 + DPT + metric bins ({what})",
                input=InputPolicy(
                    size=size,
                    method="minimal",
                    keep_aspect=True,
                    multiple_of=32,
                    interpolation="linear",
                    mean=(0.5, 0.5, 0.5),
                    std=(0.5, 0.5, 0.5),
                ),
                output=OutputPolicy(mode="bicubic", align_corners=False),
                kind="metric",
                weights=WeightSource(
                    official_file=f"ZoeD_M12_{tag}.pt",
                    url=f"https://github.com/isl-org/ZoeDepth/releases/download/v1.0/ZoeD_M12_{tag}.pt",
                    hub_id=f"Intel/zoedepth-{variant}",
                ),
                licence="MIT",
                params_millions=params,
            )
        )
    return rows


def _depth_anything_3_rows() -> list[ModelSpec]:
    # ByteDance-Seed/Depth-Anything-3: README.md ("Model Cards": Hub repos and licences;
    # the "-1.1" Large/Giant are the retrained checkpoints it says to prefer) and
    # api.py::inference (process_res 504, upper_bound_resize, ImageNet mean/std); the
    # exact resize and the sky, confidence and camera handling are models/
    # depth_anything_3.py's HOOKS. Upstream returns maps at the network size; we resize
    # them back bilinearly. Parameters: the official model.safetensors (every head, as
    # the Hub counts it: 34.3 M for DA3-SMALL); the README's table rounds differently.
    rows = []
    for size, repo, licence, params in (
        ("small", "DA3-SMALL", "Apache-2.0", 34.3),
        ("base", "DA3-BASE", "Apache-2.0", 135.4),
        ("large", "DA3-LARGE-1.1", "CC-BY-NC-4.0", 410.9),
        ("giant", "DA3-GIANT-1.1", "CC-BY-NC-4.0", 1355.7),
        ("mono-large", "DA3MONO-LARGE", "Apache-2.0", 334.2),
        ("metric-large", "DA3METRIC-LARGE", "Apache-2.0", 334.2),
    ):
        metric = size == "metric-large"
        what = {
            "mono-large": "relative depth and sky",
            "metric-large": "metric depth (focal x output / 300) and sky",
        }.get(size, "one view: relative depth, confidence and field of view")
        rows.append(
            ModelSpec(
                name=f"depth-anything-3-{size}",
                family="depth_anything_3",
                variant=size,
                description=f"Depth Anything 3 {repo}: DINOv2 + DA3 ViT, DPT head ({what})",
                input=InputPolicy(
                    size=(504, 504),
                    method="upper_bound",
                    keep_aspect=True,
                    multiple_of=14,
                    interpolation="cubic",
                    mean=IMAGENET_MEAN,
                    std=IMAGENET_STD,
                ),
                output=OutputPolicy(mode="bilinear", align_corners=False),
                kind="metric" if metric else "relative_inverse",
                weights=WeightSource(
                    url=f"{_HF}/depth-anything/{repo}/resolve/main/model.safetensors",
                    hub_id=f"depth-anything/{repo}",
                ),
                licence=licence,
                params_millions=params,
                canonical_focal=300.0 if metric else None,
                estimates_camera=size in ("small", "base", "large", "giant"),
            )
        )
    return rows


def _video_depth_anything_rows() -> list[ModelSpec]:
    # DepthAnything/Video-Depth-Anything (4f5ae23): DA-V2's DINOv2 + DPT with temporal
    # motion modules; checkpoints [metric_]video_depth_anything_vit{s,b,l}.pth on the Hub
    # (depth-anything/[Metric-]Video-Depth-Anything-{Small,Base,Large}); Small Apache-2.0,
    # Base/Large CC-BY-NC-4.0 (README "LICENSE"). A video goes through the family's
    # windowed inference (models/video_depth_anything.py: iter_video_depth, used by
    # video.stream); a photo is a one-frame clip through DA-V2's preprocessing.
    # Parameters: the official checkpoints' tensors (tests/fixtures/keys/keys_vda_*.txt,
    # without the position tables); the README's 28.4 / 113.1 / 381.8 M are lower.
    rows = []
    for enc, (size, cap, params) in {
        "vits": ("small", "Small", 29.0),
        "vitb": ("base", "Base", 114.4),
        "vitl": ("large", "Large", 384.4),
    }.items():
        licence = "Apache-2.0" if enc == "vits" else "CC-BY-NC-4.0"
        for metric in (False, True):
            repo = f"{'Metric-' if metric else ''}Video-Depth-Anything-{cap}"
            file = f"{'metric_' if metric else ''}video_depth_anything_{enc}.pth"
            rows.append(
                ModelSpec(
                    name=f"video-depth-anything-{'metric-' if metric else ''}{size}",
                    family="video_depth_anything",
                    variant=f"metric-{enc}" if metric else enc,
                    description=f"Video Depth Anything {cap}{' metric' if metric else ''}: "
                    f"DINOv2 {enc.upper()}/14 + DPT head with temporal attention",
                    input=DEPTH_ANYTHING_INPUT,
                    output=DA_V2_OUTPUT,
                    kind="metric" if metric else "relative_inverse",
                    weights=WeightSource(
                        official_file=file,
                        url=f"{_HF}/depth-anything/{repo}/resolve/main/{file}",
                    ),
                    licence=licence,
                    params_millions=params,
                )
            )
    return rows


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in _bundled_rows()
    + _midas_rows()
    + _depth_anything_rows()
    + _metric3d_rows()
    + _depth_anything_3_rows()
    + _depth_pro_rows()
    + _prompt_depth_anything_rows()
    + _moge_rows()
    + _zoedepth_rows()
    + _video_depth_anything_rows()
}


def _aliases() -> dict[str, str]:
    """Short names people type for zoo rows (``da2-small``, ``midas``), lower case."""
    table = {"midas": "midas-v21-small", "midas-small": "midas-v21-small", "dpt": "dpt-large"}
    for size in ("small", "base", "large"):
        table.update(
            {
                f"da-{size}": f"depth-anything-{size}",
                f"da1-{size}": f"depth-anything-{size}",
                f"depth-anything-v1-{size}": f"depth-anything-{size}",
                f"da2-{size}": f"depth-anything-v2-{size}",
                f"dav2-{size}": f"depth-anything-v2-{size}",
                f"metric3d-{size}": f"metric3d-v2-{size}",
            }
        )
    return {alias: name for alias, name in table.items() if name in MODELS}


def suggest_models(name: str) -> list[str]:
    """Zoo names ``name`` may have meant: itself in another case or spelling
    (``DPT_Large``), a known alias (``da2-small``), else up to three close matches."""
    key = "-".join(name.strip().lower().replace("_", "-").split())
    if key in MODELS:
        return [key]
    aliases = _aliases()
    if key in aliases:
        return [aliases[key]]
    return difflib.get_close_matches(key, [*MODELS, *aliases], n=3, cutoff=0.6)


def get_spec(name: str) -> ModelSpec:
    """The zoo row called ``name``; otherwise an UnknownModelError that suggests the
    names it may have meant (``suggest_models``) and points at ``depthlens models``."""
    try:
        return MODELS[name]
    except KeyError:
        aliases = _aliases()
        close = list(dict.fromkeys(aliases.get(c, c) for c in suggest_models(name)))
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise UnknownModelError(
            f"Unknown model '{name}'{hint}: `depthlens models` (or depthlens.MODELS) lists "
            "the zoo, and a path to weights works too."
        ) from None


def spec_for_export(description: dict[str, object]) -> ModelSpec:
    """The zoo row a converted or trained folder's ``depthlens.json`` names, with what
    its training says the output means: a metric run of a relative row's network is
    metric, and its canonical focal length (None: trained on raw depth) is the run's."""
    spec = get_spec(str(description["model"]))
    if description.get("kind") not in ("metric", "relative_inverse"):
        return spec
    focal = description.get("canonical_focal")
    return replace(
        spec,
        kind=description["kind"],  # type: ignore[arg-type]
        canonical_focal=float(focal) if isinstance(focal, int | float) else None,
    )


def spec_for_official_file(filename: str) -> ModelSpec | None:
    """The zoo row whose official checkpoint is called ``filename``, if any."""
    for spec in MODELS.values():
        if spec.weights.official_file == filename:
            return spec
    return None
