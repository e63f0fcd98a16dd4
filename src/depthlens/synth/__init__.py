"""Procedural scenes with exact depth (the synthetic data engine grows here)."""
