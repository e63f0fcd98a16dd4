"""Benchmark dataset readers for evaluation, opened from a ``KIND:PATH`` spec.

Kinds: ``nyu`` (NYU Depth V2 test split), ``kitti`` (Eigen test split), ``diode``,
``eth3d``, ``sintel``, ``folder`` (depthlens' RGB-D folder). Every reader is a
``Dataset`` of ``EvalItem``s (RGB, metric depth with 0 = invalid, validity mask,
optional intrinsics), indexed when opened and read item by item.
"""

from __future__ import annotations

from depthlens.errors import UsageError
from depthlens.eval.datasets.base import Dataset, EvalItem, Intrinsics
from depthlens.eval.datasets.diode import DIODEDataset
from depthlens.eval.datasets.eth3d import ETH3DDataset
from depthlens.eval.datasets.folder import FolderDataset
from depthlens.eval.datasets.kitti import KITTIDataset
from depthlens.eval.datasets.nyu import NYUDataset
from depthlens.eval.datasets.sintel import SintelDataset, read_dpt, write_dpt

__all__ = [
    "DATASETS",
    "KINDS",
    "DIODEDataset",
    "Dataset",
    "ETH3DDataset",
    "EvalItem",
    "FolderDataset",
    "Intrinsics",
    "KITTIDataset",
    "NYUDataset",
    "SintelDataset",
    "open_dataset",
    "read_dpt",
    "write_dpt",
]

DATASETS: dict[str, type[Dataset]] = {
    cls.kind: cls
    for cls in (
        NYUDataset,
        KITTIDataset,
        DIODEDataset,
        ETH3DDataset,
        SintelDataset,
        FolderDataset,
    )
}
KINDS = tuple(DATASETS)


def open_dataset(spec: str) -> Dataset:
    """Open the dataset a ``KIND:PATH`` spec names (e.g. ``nyu:/data/nyu``).

    Raises ``UsageError`` for a malformed spec, an unknown kind, a missing path or
    data that is not in the kind's layout.
    """
    kind, sep, path = spec.partition(":")
    kind = kind.strip().lower()
    known = ", ".join(KINDS)
    if not sep or not kind:
        raise UsageError(
            f"The dataset '{spec}' must be given as KIND:PATH with KIND one of {known}."
        )
    if kind not in DATASETS:
        raise UsageError(f"Unknown dataset kind '{kind}' in '{spec}': choose from {known}.")
    if not path.strip():
        raise UsageError(f"The dataset '{spec}' names no path after '{kind}:'.")
    return DATASETS[kind](path)
