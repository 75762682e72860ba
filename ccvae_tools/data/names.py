"""The loose spelling of a label name, for matching what a user types against a data set's or a
model's labels (one rule everywhere). Imports nothing heavy: the metadata-only commands use it."""

from __future__ import annotations

import re


def label_key(name: str) -> str:
    """The loose form of a label name: lower case, spaces, hyphens and underscores alike."""
    return re.sub(r"[\s_\-]+", "_", str(name).strip().lower()).strip("_")
