"""Tests run offline with empty, private weight caches so nothing on the machine leaks in."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="depthlens-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["DEPTHLENS_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_HOME / "hf")
os.environ["TORCH_HOME"] = str(_HOME / "torch")
os.environ["DEPTHLENS_HOME"] = str(_HOME / "depthlens")

EXPECTED = Path(__file__).parent / "expected"


@pytest.fixture(scope="session")
def expected_dir() -> Path:
    return EXPECTED


@pytest.fixture(scope="session")
def midas_checkpoint(tmp_path_factory) -> Path:
    """A random MiDaS v2.1 small checkpoint in the official layout and file name."""
    import torch

    from tests.checkpoints import official_checkpoint

    path = tmp_path_factory.mktemp("midas") / "midas_v21_small_256.pt"
    torch.save(official_checkpoint("midas_v21_small_256", seed=0), path)
    return path
