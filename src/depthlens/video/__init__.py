"""Depth for videos: temporal stabilisation of per-frame predictions (``stabilize``)
and streaming prediction over a video file (``stream``). Reading and writing video
files lives in ``depthlens.io.video``."""

from depthlens.video.stabilize import DepthStabilizer, flicker
from depthlens.video.stream import (
    MappedVideo,
    VideoDepthOutputs,
    map_video,
    map_video_batches,
    predict_frames,
    predict_video,
)

__all__ = [
    "DepthStabilizer",
    "MappedVideo",
    "VideoDepthOutputs",
    "flicker",
    "map_video",
    "map_video_batches",
    "predict_frames",
    "predict_video",
]
