"""A Gymnasium space of Unicode strings, for LLM observations and actions.

Gymnasium's :class:`~gymnasium.spaces.Text` only contains strings drawn from a fixed character
set (alphanumeric by default) and flattens each character to its index in that set. Model output
is arbitrary Unicode (CJK, emoji, LaTeX, control characters), so a charset cannot describe it and a
1.1-million-entry charset would cost ~100 MB. :class:`UnicodeText` is therefore a plain
``Space[str]``: membership is "a ``str`` whose length is within bounds", and it is not flattenable
(there is no fixed-size numeric encoding of free text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Space

# Unicode scalar values: U+0000..U+10FFFF without the surrogates U+D800..U+DFFF, which cannot be
# encoded as UTF-8 and so never appear in decoded model output.
_SURROGATE_START = 0xD800
_SURROGATE_COUNT = 0x800
_N_SCALAR_VALUES = 0x110000 - _SURROGATE_COUNT


class UnicodeText(Space[str]):
    """Strings of any Unicode characters with ``min_length <= len(s) <= max_length``.

    ``sample()`` draws a length uniformly from the bounds and each character uniformly from all
    Unicode scalar values (surrogates excluded), using the space's seeded ``np_random``.

    Example:
        >>> space = UnicodeText(max_length=8, seed=0)
        >>> "héllo 世界" in space, "x" * 9 in space, b"bytes" in space
        (True, False, False)
    """

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        if not 0 <= min_length <= max_length:
            raise ValueError(
                f"UnicodeText needs 0 <= min_length <= max_length, got min_length={min_length}, "
                f"max_length={max_length}"
            )
        self.min_length = int(min_length)
        self.max_length = int(max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Free text has no fixed-size numeric encoding."""
        return False

    def contains(self, x: Any) -> bool:
        """Return True if ``x`` is a ``str`` whose length is within the bounds."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: None = None, probability: None = None) -> str:
        """A random string; masks and probabilities are not supported (there is no charset)."""
        if mask is not None or probability is not None:
            raise NotImplementedError("UnicodeText.sample() does not support mask or probability")
        length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        codes = self.np_random.integers(0, _N_SCALAR_VALUES, size=length)
        codes[codes >= _SURROGATE_START] += _SURROGATE_COUNT
        return "".join(map(chr, codes.tolist()))

    def to_jsonable(self, sample_n: Sequence[str]) -> list[str]:
        """Strings are already JSON values."""
        return list(sample_n)

    def from_jsonable(self, sample_n: list[str]) -> list[str]:
        """Strings are already JSON values."""
        return list(sample_n)

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )
