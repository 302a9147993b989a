"""The errors a user's input can cause, each with a message that names the file, folder or value at fault."""

from __future__ import annotations


class DatasetError(ValueError):
    """The dataset as a whole is unusable; the message names the folder, file or class at fault."""


class UnsafePath(DatasetError):
    """A file name from an archive or an upload that would land outside its destination folder."""


class ImageProblem(ValueError):
    """One image file is unusable; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WeightsUnavailable(RuntimeError):
    """ImageNet weights are neither in the Keras cache nor downloadable."""
