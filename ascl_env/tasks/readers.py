"""Reading upstream benchmark files row by row, with errors that name the file, row and column.

Shared by the loaders of :mod:`ascl_env.tasks.loaders` and :mod:`ascl_env.tasks.paper_sets`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ascl_env.errors import format_problems, pydantic_problems, short_repr
from ascl_env.tasks.model import Task, TaskError

__all__ = ["PathLike", "csv_rows", "existing_file", "jsonl_rows", "row_task", "row_text"]

PathLike = str | Path


def existing_file(path: PathLike, source: str) -> Path:
    """``path`` as a ``Path``; ``FileNotFoundError`` naming ``source`` when it is no file."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{source}: file not found: {file}")
    return file


def csv_rows(
    path: PathLike, source: str, required: Sequence[str], delimiter: str = ","
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ``(where, row)`` for each data row, after checking the header has ``required``."""
    file = existing_file(path, source)
    # WildJailbreak's TSV has fields longer than csv's default limit of 128 KiB
    csv.field_size_limit(max(csv.field_size_limit(), 16 * 1024 * 1024))
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            if reader.fieldnames is None:
                raise TaskError(f"{file}: {source} file is empty (no header, no rows)")
            header = reader.fieldnames
            missing = [c for c in required if c not in header]
            if missing:
                raise TaskError(
                    f"{file}: {source} file is missing column(s) {missing}; "
                    f"header is {short_repr(header, 300)}"
                )
            number = 0
            for number, row in enumerate(reader, start=1):
                where = f"{file}: row {number} (line {reader.line_num})"
                if None in row or any(value is None for value in row.values()):
                    raise TaskError(f"{where}: expected {len(header)} fields")
                yield where, row
            if number == 0:
                raise TaskError(f"{file}: {source} file has a header but no data rows")
        except csv.Error as exc:
            raise TaskError(f"{file}: line {reader.line_num}: unreadable CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise TaskError(f"{file}: after line {reader.line_num}: not UTF-8 text: {exc}") from exc


def jsonl_rows(
    path: PathLike, source: str, required: Sequence[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, row)`` for each JSON object line, after checking it has ``required``."""
    file = existing_file(path, source)
    try:
        lines = file.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 is valid JSON
    except UnicodeDecodeError as exc:
        raise TaskError(f"{file}: not UTF-8 text: {exc}") from exc
    number = 0
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        number += 1
        where = f"{file}: row {number} (line {line_number})"
        try:
            row = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, or an int of 4300+ digits
            raise TaskError(f"{where}: invalid JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise TaskError(f"{where}: expected a JSON object")
        missing = [k for k in required if k not in row]
        if missing:
            raise TaskError(f"{where}: missing field(s) {missing}")
        yield where, row
    if number == 0:
        raise TaskError(f"{file}: {source} file has no rows (it is empty or blank)")


def row_text(row: dict[str, Any], column: str, where: str) -> str:
    """The non-empty text of ``row[column]``, stripped; ``TaskError`` naming ``where``."""
    value = row[column]
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise TaskError(f"{where}: column {column!r} is empty or not text: {short_repr(value)}")
    return str(value).strip()


def row_task(where: str, **fields: Any) -> Task:
    """A validated :class:`Task`; ``TaskError`` naming ``where`` and the bad fields."""
    try:
        return Task(**fields)
    except ValidationError as exc:
        raise TaskError(f"{where}: {format_problems(pydantic_problems(exc))}") from exc
