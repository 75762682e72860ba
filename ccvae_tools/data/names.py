"""The loose spelling of a label name, for matching what a user types against a data set's or a
model's labels (one rule everywhere), and the one matcher built on it. Imports nothing heavy: the
metadata-only commands use it."""

from __future__ import annotations

import difflib
import re
from typing import Sequence

from ccvae_tools.util.errors import UsageError


def label_key(name: str) -> str:
    """The loose form of a label name: lower case, spaces, hyphens and underscores alike."""
    return re.sub(r"[\s_\-]+", "_", str(name).strip().lower()).strip("_")


def match_label(name: str, labels: Sequence[str], *, listing: str, where: str = "",
                none: str = "there are no labels") -> int:
    """Index of `name` among `labels`: the exact spelling, else the one label of the same loose
    spelling. UsageError when it matches several (spell it exactly) or none: the closest names, then
    `listing` (the labels there are); `where` names the source ("in list_attr_celeba.txt")."""
    labels = [str(x) for x in labels]
    if name in labels:
        return labels.index(name)
    key = label_key(name)
    hits = [i for i, lab in enumerate(labels) if label_key(lab) == key]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UsageError(f"label {name!r} is ambiguous: it matches {', '.join(labels[i] for i in hits)}; "
                         f"spell it exactly")
    if not labels:
        raise UsageError(f"label {name!r}: {none}")
    close = _closest(key, labels)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UsageError(f"unknown label {name!r}{where}; {hint}{listing}")


def _closest(key: str, labels: list[str]) -> list[str]:
    """Up to three labels spelt like `key`: close matches, then those it begins."""
    keys = [label_key(lab) for lab in labels]
    close = [labels[keys.index(c)] for c in difflib.get_close_matches(key, keys, n=3, cutoff=0.6)]
    prefix = [lab for lab, k in zip(labels, keys) if key and k.startswith(key) and lab not in close]
    return close + prefix[: max(0, 3 - len(close))]
