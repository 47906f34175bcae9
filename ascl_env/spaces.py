"""A Gymnasium space of Unicode strings, for LLM observations and actions.

Gymnasium's :class:`~gymnasium.spaces.Text` only contains strings drawn from a fixed character
set (alphanumeric by default) and flattens each character to its index in that set. Model output
is arbitrary Unicode (CJK, emoji, LaTeX, control characters), so a charset cannot describe it and a
1.1-million-entry charset would cost ~100 MB. :class:`UnicodeText` is therefore a plain
``Space[str]``: membership is "a ``str`` whose length is within bounds", and it is not flattenable
(there is no fixed-size numeric encoding of free text).

For ``gymnasium.vector.AsyncVectorEnv(..., shared_memory=True)`` (the default, and what
``gymnasium.make_vec(..., vectorization_mode="async")`` uses) this module registers Gymnasium's
``create_shared_memory``, ``read_from_shared_memory`` and ``write_to_shared_memory`` for
:class:`UnicodeText`. Each environment gets ``max_length + 1`` int32 cells: the string's length,
then its code points (UTF-32), so every ``str`` in the space round-trips exactly, NUL characters
and lone surrogates included. ``read_from_shared_memory`` returns a live view
(:class:`SharedTextView`) that decodes the current strings on access; the vector env's default
``copy=True`` hands out a plain ``tuple`` of ``str`` snapshot, as in the other modes.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, overload

import numpy as np
from gymnasium.spaces import Space
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

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


# --- shared memory for AsyncVectorEnv ------------------------------------------------------------
# Layout per environment: [length, code point 0, ..., code point max_length - 1] as int32.


def _cells(shared_memory: Any) -> np.ndarray:
    return np.frombuffer(shared_memory.get_obj(), dtype=np.int32)


@create_shared_memory.register(UnicodeText)
def _create_unicode_text_shared_memory(space: UnicodeText, n: int = 1, ctx: ModuleType = mp) -> Any:
    return ctx.Array(np.dtype(np.int32).char, n * (space.max_length + 1))


@write_to_shared_memory.register(UnicodeText)
def _write_unicode_text_to_shared_memory(
    space: UnicodeText, index: int, value: str, shared_memory: Any
) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"UnicodeText shared memory: value must be a str, got {type(value).__name__}"
        )
    if len(value) > space.max_length:
        raise ValueError(
            f"UnicodeText shared memory: a string of {len(value)} characters does not fit "
            f"max_length={space.max_length}"
        )
    codes = np.frombuffer(value.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    start = index * (space.max_length + 1)
    cells = _cells(shared_memory)
    cells[start] = len(value)
    cells[start + 1 : start + 1 + len(value)] = codes


class SharedTextView(Sequence[str]):
    """The strings of ``n`` environments in an AsyncVectorEnv's shared memory, decoded on access.

    It is what ``read_from_shared_memory`` returns for :class:`UnicodeText`: like the numpy view
    returned for a ``Box``, it always shows the latest observations. ``copy.deepcopy`` (what the
    vector env's default ``copy=True`` applies) and ``tuple(view)`` give a snapshot ``tuple``.
    """

    def __init__(self, space: UnicodeText, shared_memory: Any, n: int) -> None:
        self._rows = _cells(shared_memory).reshape(n, space.max_length + 1)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        row = self._rows[index]
        length = int(row[0])
        return row[1 : 1 + length].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable contents

    def __repr__(self) -> str:
        return f"SharedTextView({tuple(self)!r})"


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_text_from_shared_memory(
    space: UnicodeText, shared_memory: Any, n: int = 1
) -> SharedTextView:
    return SharedTextView(space, shared_memory, n)
