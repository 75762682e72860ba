"""Errors a user can cause. The CLI turns them into one line on stderr (`message`) and an exit code."""

from ccvae_tools.util.text import safe_text


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


class Interrupted(CcvaeError):
    """Ctrl-C: the message says what was saved and how to go on. Exit 130, as for SIGINT."""

    exit_code = 130


def message(error: BaseException) -> str:
    """An error's text as the terminal shows it: one line, terminal-safe. Messages quote strings
    from files (label names, CSV headers, paths), so their control characters, escape sequences and
    line breaks are shown escaped (`util/text.py`); every error the CLI prints goes through here."""
    return safe_text(str(error))
