"""Evaluation: standard depth error metrics (``depthlens.eval.metrics``) and benchmark protocols."""
