"""Depth effects built on the inference core: lens blur (``bokeh``), the 3D-photo
animation (``parallax``), stereo pairs (``stereo``) and near-obstacle warnings
(``obstacle``). Each takes an RGB image and a depth map with its ``kind``
(``"relative_inverse"`` or ``"metric"``) and returns images or a report; none runs a
model itself."""
