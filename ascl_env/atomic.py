"""Atomic file writes: a reader sees the old file or the whole new one, never half a file.

The content goes to a temporary file beside the target, which is then renamed into place
(``os.replace``, atomic on POSIX and Windows within one file system); a failed write leaves the
old file as it was and no temporary file behind. The bench writes its result, report and plot
files (:mod:`ascl_env.bench.results`, :mod:`ascl_env.bench.report`, :mod:`ascl_env.bench.plots`)
and ``judge-eval`` its files this way.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result gets what open() gives
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any, *, ensure_ascii: bool = False) -> Path:
    """Write ``data`` as indented JSON with a final newline to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=ensure_ascii) + "\n")
