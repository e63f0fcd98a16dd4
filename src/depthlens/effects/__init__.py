"""Depth effects built on the inference core: lens blur (``bokeh``), the 3D-photo
animation (``parallax``), stereo pairs (``stereo``) and near-obstacle warnings
(``obstacle``). Each takes an RGB image and a depth map with its ``kind``
(``"relative_inverse"`` or ``"metric"``) and returns images or a report; none runs a
model itself. ``apply`` puts them behind one call for the CLI, the web API and video."""

from depthlens.effects.apply import (
    DEFAULT_LOOP_FRAMES,
    EFFECTS,
    EffectSettings,
    StillEffect,
    convert_video,
    loop_frames,
    parallax_animation,
    render_still,
)
from depthlens.effects.bokeh import BokehResult, lens_blur
from depthlens.effects.obstacle import ObstacleReport, annotate_obstacles, find_obstacles
from depthlens.effects.parallax import (
    CAMERA_PATHS,
    MAX_PARALLAX_FRAMES,
    CameraMotion,
    camera_path,
    parallax_frames,
)
from depthlens.effects.stereo import STEREO_LAYOUTS, stereo_image, stereo_views

__all__ = [
    "CAMERA_PATHS",
    "DEFAULT_LOOP_FRAMES",
    "EFFECTS",
    "MAX_PARALLAX_FRAMES",
    "STEREO_LAYOUTS",
    "BokehResult",
    "CameraMotion",
    "EffectSettings",
    "ObstacleReport",
    "StillEffect",
    "annotate_obstacles",
    "camera_path",
    "convert_video",
    "find_obstacles",
    "lens_blur",
    "loop_frames",
    "parallax_animation",
    "parallax_frames",
    "render_still",
    "stereo_image",
    "stereo_views",
]
