"""Errors a user can cause. The CLI turns them into one line on stderr and an exit code."""


class CcvaeError(Exception):
    """A failed run: the message names the file or option at fault and what to do."""

    exit_code = 1


class UsageError(CcvaeError):
    """Bad usage of a command (unknown option value, unknown label name, ...)."""

    exit_code = 2


class DataError(CcvaeError):
    """A data folder, CSV or image that cannot be used."""


class WeightsError(CcvaeError):
    """A weights file that cannot be loaded."""


class TrainingError(CcvaeError):
    """Training stopped (non-finite loss, nothing to train on, ...)."""
