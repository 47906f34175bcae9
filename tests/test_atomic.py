"""Atomic writes (ascl_env.atomic): whole files or the old one, no temporaries left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ascl_env import atomic


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "report.json"
    atomic.atomic_write_json(path, {"a": 1})
    atomic.atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"

    def broken(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write(path, broken)
    assert path.read_text() == "second\n"  # the old file is intact
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_atomic_write_json_text_and_mode(tmp_path):
    path = tmp_path / "out.json"
    atomic.atomic_write_json(path, {"é": 1})
    assert path.read_text(encoding="utf-8") == '{\n  "é": 1\n}\n'
    atomic.atomic_write_json(path, {"é": 1}, ensure_ascii=True)
    assert path.read_text(encoding="ascii") == '{\n  "\\u00e9": 1\n}\n'
    # mkstemp creates 0600; the file gets the mode open() would give under the umask
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
