"""The valid range of a numeric option, declared once where the option is declared: `--help`
states it (`Range.text`), and `Range.check` refuses anything outside it, and any NaN or infinity,
with one line naming the option and the range (a UsageError, exit 2), before any work starts.

    LR = Range(above=0, maximum=1)
    LR.text()               # '(0, 1]'
    LR.check("--lr", -1.0)  # UsageError: --lr must be a finite number in (0, 1], got -1.0

Training options (`training/options.py`) and the commands' numeric options (`cli/params.number`)
both use it; `whole_number` reads a count or size written in a file or an option, and
`finite_number` tells a usable number read from a file (JSON, metadata). Imports only util/errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ccvae_tools.util.errors import UsageError

SEED_MAX = 2 ** 63 - 1        # seeds fit a signed 64-bit integer (what torch's generators take)
_ASCII_DIGITS = frozenset("0123456789")


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """The whole number `text` writes in ASCII digits (a count, a size in a file or an option), or
    None. `str.isdigit` then `int` is not safe on such text: isdigit accepts digits that int refuses
    ('\u00b2'), and int refuses more than 4,300 digits (ValueError, an internal error); no count or
    size needs more than `max_digits` digits."""
    if not text or len(text) > max_digits or not _ASCII_DIGITS.issuperset(text):
        return None
    return int(text)


def finite_number(value) -> bool:
    """A finite int or float, and not a bool (JSON's true is an int to Python): what a number read
    from a file (metrics, metadata, a run's records) must be before it is shown or computed with."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(x: float) -> str:
    """1.0 -> '1', 1e6 -> '1000000', 0.0001 -> '0.0001', 2**63-1 in full."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Range:
    """minimum <= value, or above < value (an open lower end); value <= maximum; None: no bound."""

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None

    def __post_init__(self) -> None:
        if self.minimum is not None and self.above is not None:
            raise ValueError("give minimum or above, not both")

    def text(self) -> str:
        """'[2, 64]', '(0, 1]', '>= 0', '> 0', '<= 10', or '' for no bound."""
        low = self.minimum if self.minimum is not None else self.above
        if low is not None and self.maximum is not None:
            bracket = "[" if self.minimum is not None else "("
            return f"{bracket}{_num(low)}, {_num(self.maximum)}]"
        if low is not None:
            return f"{'>=' if self.minimum is not None else '>'} {_num(low)}"
        return f"<= {_num(self.maximum)}" if self.maximum is not None else ""

    def contains(self, value: float) -> bool:
        """Whether `value` is finite and within the bounds."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.minimum is None or value >= self.minimum) and (self.above is None or value > self.above)
                and (self.maximum is None or value <= self.maximum))

    def check(self, flag: str, value: float) -> None:
        """UsageError (one line naming `flag` and the range) unless `value` is finite and in range."""
        if self.contains(value):
            return
        kind = "a finite number" if isinstance(value, float) else "a whole number"
        where = self.text()
        bound = f" in {where}" if where[:1] in ("[", "(") else f" {where}" if where else ""
        raise UsageError(f"{flag} must be {kind}{bound}, got {value!r}")
