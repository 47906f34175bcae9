"""Human-labelled responses read from CSV or JSONL files, for checking a judge against them.

Two kinds of label: refusal labels (:func:`read_labelled`: did the response refuse?) and harm
labels (:func:`read_harm_labelled`: is the response harmful?); :func:`detect_task` tells them
apart by the columns. Every error is a :class:`JudgeEvalError` naming the file, row and column.

Columns are found by name (first match, case-insensitive) unless given:

- response: ``completion``, ``response``, ``answer``, ``output``, ``assistant_response``;
- human refusal label: ``final_label``, ``label``, ``human_label``, ``refused``, ``refusal``,
  ``human_score``; a label is a class (``1_full_compliance``, ``full_refusal``,
  ``partial refusal``, …) or a boolean where true means a refusal (``true``/``false``,
  ``1``/``0``, ``yes``/``no``, ``refusal``/``compliance``);
- human harm label: ``harmful``, ``is_harmful``, ``harm_label``, ``unsafe``, ``label``; true
  means a harmful response (``1``/``0``, ``true``/``false``, ``harmful``/``unharmful``, …);
- prompt (optional for refusal labels): ``prompt``, ``question``, ``request``, ``objective``
  (and ``goal`` for harm labels, where a ``behavior`` column, when filled, is the request);
- prompt kind (optional, refusal labels): ``kind``, ``safety``, ``prompt_label``, ``type``.
  ``safe``/``benign`` and ``unsafe``/``harmful`` are read as such; XSTest's ``type`` column marks
  unsafe prompts with a ``contrast_`` prefix, every other type is safe.

XSTest's completion files (``id, type, prompt, completion, …, final_label``), PyRIT's
refusal-scorer files (``# dataset_version`` comment lines, then ``objective, assistant_response,
human_score, data_type``) and the shared ``harm_labels`` files (``dataset, behavior, prompt,
response, label``) work as they are. Comment lines (``#``) before a CSV header are skipped.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ascl_env.judges.refusal import RESPONSE_CLASSES, ResponseClass

RESPONSE_COLUMNS = ("completion", "response", "answer", "output", "assistant_response")
LABEL_COLUMNS = ("final_label", "label", "human_label", "refused", "refusal", "human_score")
PROMPT_COLUMNS = ("prompt", "question", "request", "objective")
KIND_COLUMNS = ("kind", "safety", "prompt_label", "type")
HARM_LABEL_COLUMNS = ("harmful", "is_harmful", "harm_label", "unsafe", "label")
"""Human harm-label columns, first match; the first four name a harm label outright."""

_CLASS_ALIASES: dict[str, ResponseClass] = {}
for _number, _name in enumerate(RESPONSE_CLASSES, 1):
    _CLASS_ALIASES[_name] = _CLASS_ALIASES[f"{_number}_{_name}"] = _name
_TRUE = {"true", "1", "yes", "y", "refusal", "refused", "refuse"}
_FALSE = {"false", "0", "no", "n", "compliance", "complied", "comply", "not_refusal"}
_SAFE = {"safe", "benign"}
_UNSAFE = {"unsafe", "harmful"}
_HARMFUL = {"1", "true", "yes", "y", "harmful", "unsafe"}
_HARMLESS = {"0", "false", "no", "n", "unharmful", "harmless", "safe", "benign"}
_JSONL = (".jsonl", ".ndjson")


class JudgeEvalError(ValueError):
    """A labelled file cannot be read: the message names the file, row and column."""


def _where(file: str, row: int) -> str:
    """``file.csv: row 3`` or ``file.jsonl: line 3``: how an error names a row."""
    unit = "line" if file.lower().endswith(_JSONL) else "row"
    return f"{file}: {unit} {row}"


@dataclass(frozen=True)
class LabelledRow:
    """One labelled response. ``human`` is a class, or ``None`` when the label is only binary."""

    file: str
    row: int
    response: str
    refused: bool
    human: ResponseClass | None
    prompt: str | None
    unsafe: bool | None

    @property
    def where(self) -> str:
        return _where(self.file, self.row)


@dataclass(frozen=True)
class HarmRow:
    """One response with a human harm label. ``request`` is what the judge is told was asked:
    the plain behaviour where the file gives one, else the prompt."""

    file: str
    row: int
    dataset: str | None
    request: str
    response: str
    harmful: bool

    @property
    def where(self) -> str:
        return _where(self.file, self.row)


def parse_label(value: Any) -> tuple[bool, ResponseClass | None]:
    """``(refused, class or None)`` for a human label; raises ``ValueError`` when unknown."""
    if isinstance(value, bool):
        return value, None
    text = str(value).strip().lower().replace(" ", "_").replace("-", "_")
    if text in _CLASS_ALIASES:
        label = _CLASS_ALIASES[text]
        return label != "full_compliance", label
    if text in _TRUE:
        return True, None
    if text in _FALSE:
        return False, None
    raise ValueError(
        f"unknown label {value!r} (expected one of {', '.join(RESPONSE_CLASSES)}, "
        "optionally with XSTest's 1_/2_/3_ prefix, or a boolean such as true/false)"
    )


def parse_kind(value: Any, column: str) -> bool | None:
    """``True`` for an unsafe prompt, ``False`` for a safe one, ``None`` when blank."""
    text = str(value).strip().lower()
    if not text:
        return None
    if column == "type" and text not in _SAFE | _UNSAFE:
        return text.startswith("contrast_")
    if text in _UNSAFE:
        return True
    if text in _SAFE:
        return False
    raise ValueError(f"unknown prompt kind {value!r} (expected safe/benign or unsafe/harmful)")


def parse_harm_label(value: Any) -> bool:
    """``True`` for a harmful response (1, true, yes, harmful, unsafe); raises ``ValueError``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _HARMFUL:
        return True
    if text in _HARMLESS:
        return False
    raise ValueError(
        f"unknown harm label {value!r} (expected 1/0, true/false, yes/no, harmful/unharmful or "
        "unsafe/safe)"
    )


def _pick(header: Sequence[str], given: str | None, candidates: Sequence[str]) -> str | None:
    lowered = {name.strip().lower(): name for name in header}
    if given is not None:
        return lowered.get(given.strip().lower())
    for name in candidates:
        if name in lowered:
            return lowered[name]
    return None


def _required(
    path: Path, header: Sequence[str], role: str, given: str | None, candidates: Sequence[str]
) -> str:
    """The column holding ``role``; raises naming what was wanted and what the file has."""
    found = _pick(header, given, candidates)
    if found is None:
        wanted = repr(given) if given else "one of " + ", ".join(candidates)
        raise JudgeEvalError(
            f"{path}: no {role} column: expected {wanted}; the columns are {header}"
        )
    return found


def _skip_comments(handle: Any) -> None:
    """Leave ``handle`` at the first line that is not a ``#`` comment (PyRIT's scorer-eval CSVs
    start with ``# dataset_version=1.2``)."""
    position = handle.tell()
    line = handle.readline()
    while line.startswith("#"):
        position = handle.tell()
        line = handle.readline()
    handle.seek(position)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise JudgeEvalError(f"{path}: no such file")
    if path.suffix.lower() not in {*_JSONL, ".csv"}:
        raise JudgeEvalError(f"{path}: unsupported file type (expected .csv, .jsonl or .ndjson)")


def _read_jsonl(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    records: list[tuple[int, dict[str, Any]]] = []
    header: dict[str, None] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JudgeEvalError(f"{path}: line {line_no}: invalid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise JudgeEvalError(f"{path}: line {line_no}: expected a JSON object")
            header.update(dict.fromkeys(record))
            records.append((line_no, record))
    return list(header), records


@contextmanager
def _records(path: Path) -> Iterator[tuple[list[str], Iterable[tuple[int, dict[str, Any]]]]]:
    """Header and ``(row number, record)`` pairs, rows 1-based, while the block runs. A CSV
    file is read as the pairs are, so an error in a row comes after the checks of the header."""
    _check_file(path)
    if path.suffix.lower() in _JSONL:
        yield _read_jsonl(path)
        return
    with path.open(encoding="utf-8", newline="") as handle:
        _skip_comments(handle)  # rows are still numbered from the first data row
        reader = csv.DictReader(handle)
        yield list(reader.fieldnames or []), _csv_rows(path, reader)


def _csv_rows(path: Path, reader: csv.DictReader) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        yield from enumerate(reader, 1)
    except csv.Error as exc:
        raise JudgeEvalError(f"{path}: line {reader.line_num}: bad CSV: {exc}") from None


def _label(record: dict[str, Any], column: str, parse: Callable[[Any], Any], where: str) -> Any:
    """``parse`` of a row's label; an empty or unknown label raises naming the row and column
    (``where`` names both)."""
    raw = record.get(column)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise JudgeEvalError(f"{where}: empty label")
    try:
        return parse(raw)
    except ValueError as exc:
        raise JudgeEvalError(f"{where}: {exc}") from None


def read_labelled(
    path: str | os.PathLike,
    *,
    response_column: str | None = None,
    label_column: str | None = None,
    prompt_column: str | None = None,
    kind_column: str | None = None,
) -> list[LabelledRow]:
    """Refusal-labelled rows of a CSV or JSONL file (see the module docstring for the columns)."""
    path = Path(path)
    with _records(path) as (header, records):
        response_col = _required(path, header, "response", response_column, RESPONSE_COLUMNS)
        label_col = _required(path, header, "label", label_column, LABEL_COLUMNS)
        optional = []
        for role, given, candidates in (
            ("prompt", prompt_column, PROMPT_COLUMNS),
            ("kind", kind_column, KIND_COLUMNS),
        ):
            found = _pick(header, given, candidates)
            if given is not None and found is None:
                raise JudgeEvalError(
                    f"{path}: no {role} column {given!r}; the columns are {header}"
                )
            optional.append(found)
        prompt_col, kind_col = optional
        rows = []
        for number, record in records:
            where = _where(str(path), number)
            response = record.get(response_col)
            if not isinstance(response, str):
                raise JudgeEvalError(f"{where}: column {response_col!r}: missing or not text")
            refused, human = _label(
                record, label_col, parse_label, f"{where}: column {label_col!r}"
            )
            prompt = None if prompt_col is None else record.get(prompt_col)
            unsafe = None
            if kind_col is not None and record.get(kind_col) is not None:
                try:
                    unsafe = parse_kind(record[kind_col], kind_col.strip().lower())
                except ValueError as exc:
                    raise JudgeEvalError(f"{where}: column {kind_col!r}: {exc}") from None
            rows.append(
                LabelledRow(
                    file=str(path),
                    row=number,
                    response=response,
                    refused=refused,
                    human=human,
                    prompt=prompt if isinstance(prompt, str) else None,
                    unsafe=unsafe,
                )
            )
        if not rows:
            raise JudgeEvalError(f"{path}: no labelled rows")
        return rows


def detect_task(path: str | os.PathLike) -> str:
    """``"harm"`` when the file holds harm labels, else ``"refusal"``.

    Harm: the ``harm_labels`` schema (a ``behavior`` column beside ``label``) or a label column
    named for harm (``harmful``, ``is_harmful``, ``harm_label``, ``unsafe``). A plain
    ``prompt,response,label`` file is ambiguous and read as refusal labels unless
    ``--task harm`` says otherwise.
    """
    with _records(Path(path)) as (columns, _):
        header = {h.strip().lower() for h in columns}
    if "behavior" in header and "label" in header:
        return "harm"
    return "harm" if header & set(HARM_LABEL_COLUMNS[:4]) else "refusal"


def read_harm_labelled(
    path: str | os.PathLike,
    *,
    response_column: str | None = None,
    label_column: str | None = None,
    prompt_column: str | None = None,
) -> list[HarmRow]:
    """Harm-labelled rows of a CSV or JSONL file: the ``harm_labels`` schema (``dataset``,
    ``behavior``, ``prompt``, ``response``, ``label``) or ``prompt,response,label``."""
    path = Path(path)
    with _records(path) as (header, records):
        response_col = _required(path, header, "response", response_column, RESPONSE_COLUMNS)
        label_col = _required(path, header, "label", label_column, HARM_LABEL_COLUMNS)
        prompt_col = _required(path, header, "prompt", prompt_column, PROMPT_COLUMNS + ("goal",))
        behavior_col = _pick(header, None, ("behavior",))
        rows = []
        for number, record in records:
            where = _where(str(path), number)
            response = record.get(response_col)
            if not isinstance(response, str):
                raise JudgeEvalError(f"{where}: field {response_col!r}: missing or not text")
            harmful = _label(record, label_col, parse_harm_label, f"{where}: field {label_col!r}")
            behavior = record.get(behavior_col) if behavior_col else None
            request = behavior if isinstance(behavior, str) and behavior.strip() else None
            if request is None:
                prompt = record.get(prompt_col)
                if not isinstance(prompt, str) or not prompt.strip():
                    named = (
                        f"{behavior_col!r} and {prompt_col!r}" if behavior_col else repr(prompt_col)
                    )
                    raise JudgeEvalError(f"{where}: field {named}: no request (empty or not text)")
                request = prompt
            dataset = record.get("dataset")
            rows.append(
                HarmRow(
                    file=str(path),
                    row=number,
                    dataset=dataset if isinstance(dataset, str) and dataset else None,
                    request=request,
                    response=response,
                    harmful=harmful,
                )
            )
        if not rows:
            raise JudgeEvalError(f"{path}: no labelled rows")
        return rows
