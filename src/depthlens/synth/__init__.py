"""Procedural scenes with exact depth: the synthetic data engine.

``render.render_batch`` turns seeds into ``SynthSample`` s (RGB, metric z-depth, valid
mask, normals, intrinsics); ``io.rgbd`` stores them as RGB-D folders. Inside:
``scene`` (the frozen scene description and its builder), ``objects`` and ``layouts``
(what rooms, streets, landscapes, tabletops and gardens of thin things contain),
``raycast`` (batched analytic ray casting in torch), ``textures`` (patterns and sky),
``camera_effects`` (what a real camera adds) and ``demo`` (the picture ``depthlens
demo`` starts from).
"""
