"""User-facing errors: each one is a single sentence a user can act on.

The CLI prints ``str(error)`` and exits with ``exit_code``; nothing else is shown.
"""

from __future__ import annotations


class DepthlensError(Exception):
    """Base class of every error depthlens raises on purpose."""

    exit_code = 1


class ImageError(DepthlensError):
    """An input could not be read as an image (missing, corrupt, too large)."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than allowed, refused from its header before decoding.

    ``pixels`` is its pixel count (None when the decoder did not say) and ``limit``
    the number it exceeded.
    """

    def __init__(self, message: str, pixels: int | None, limit: int) -> None:
        super().__init__(message)
        self.pixels = pixels
        self.limit = limit

    def __reduce__(self) -> tuple[type[ImageTooLargeError], tuple[str, int | None, int]]:
        # Exceptions pickle as cls(*args); args holds only the message, so say it all
        # (worker processes send their errors back pickled).
        return type(self), (str(self), self.pixels, self.limit)


class WeightsError(DepthlensError):
    """Weights are missing, unreadable, or do not fit the network."""

    exit_code = 2


class MissingWeightsError(WeightsError):
    """No weights for a model on this machine, and none could be downloaded.

    ``str()`` speaks to Python callers (``weights=PATH``); ``cli_message`` says the
    same to the command line (``--weights PATH``), where ``depthlens`` prints it;
    ``why`` is the reason a download failed, when one was tried.
    """

    def __init__(self, message: str, cli_message: str, why: str | None = None) -> None:
        super().__init__(message)
        self.cli_message = cli_message
        self.why = why  # why a download did not get them, when one was tried

    def __reduce__(self) -> tuple[type[MissingWeightsError], tuple[str, str, str | None]]:
        return type(self), (str(self), self.cli_message, self.why)


class DownloadError(WeightsError):
    """Weights that could not be downloaded: which model, from where, and why."""

    def __init__(self, model: str, source: str, reason: str) -> None:
        super().__init__(f"Could not download {model} from {source}: {reason}.")
        self.model, self.source, self.reason = model, source, reason

    def __reduce__(self) -> tuple[type[DownloadError], tuple[str, str, str]]:
        return type(self), (self.model, self.source, self.reason)


class UnknownModelError(DepthlensError):
    """A model name that is not in the zoo and not a path."""

    exit_code = 2


class UsageError(DepthlensError):
    """Arguments that cannot work: an unknown format, colormap or device."""

    exit_code = 2


class OutputError(DepthlensError):
    """An output could not be written where it was asked for."""
