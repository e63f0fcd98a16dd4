"""User-facing errors: each one is a single sentence a user can act on.

The CLI prints ``str(error)`` and exits with ``exit_code``; nothing else is shown.
"""

from __future__ import annotations


class DepthlensError(Exception):
    """Base class of every error depthlens raises on purpose."""

    exit_code = 1


class ImageError(DepthlensError):
    """An input could not be read as an image (missing, corrupt, too large)."""


class WeightsError(DepthlensError):
    """Weights are missing, unreadable, or do not fit the network."""

    exit_code = 2


class UnknownModelError(DepthlensError):
    """A model name that is not in the zoo and not a path."""

    exit_code = 2


class UsageError(DepthlensError):
    """Arguments that cannot work: an unknown format, colormap or device."""

    exit_code = 2


class OutputError(DepthlensError):
    """An output could not be written where it was asked for."""
