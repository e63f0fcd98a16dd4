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

# The default model's fallback notice is said once per process, so in-process CLI runs
# would see it in whichever test came first: it counts as said (tests of the notice
# reset it; subprocesses say it).
from depthlens.models import weights as _weights  # noqa: E402 (after the environment)

_weights._FALLBACK_SAID.add("said by conftest")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: tiny images gain nothing from more on a shared
    machine, and one thread is the arithmetic of a 1-CPU Ray actor."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
