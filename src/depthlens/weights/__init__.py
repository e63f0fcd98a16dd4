"""Bundled weights live here (safetensors + JSON config)."""
