"""The result directory of a run: its layout, ``run.json``, the episodes file.

A result directory holds

* ``run.json`` (:data:`RUN_FILE`): ``{"config": ..., "provenance": ..., "invocations": [...]}``,
  what was run (agent spec, task selection, seed, environment and generation settings, a
  fingerprint of the episode plan), what it was run with (:mod:`ascl_env.bench.provenance`:
  package versions, git revision, model and judge identity, threads) and, per invocation, how
  long it took and that invocation's own provenance;
* ``episodes.jsonl`` (:data:`EPISODES_FILE`): one JSON row per finished episode, appended and
  flushed as each episode ends; an episode whose agent failed (an endpoint that kept failing)
  has a row with ``"error"`` set (:func:`is_errored`), which a resumed run replaces;
* ``report.json``, ``report.md`` and ``lookup_rate_by_kind.png``, written from the episodes by
  :mod:`ascl_env.bench.report`.

A comparison directory holds ``comparison.json``, ``comparison.md``, ``safety_vs_utility.png``
and ``lookup_rate_by_kind.png``.

Running into a directory whose ``run.json`` describes a different configuration is refused, so
resumed episodes always belong to the same experiment; ``overwrite=True`` starts afresh. One
process at a time writes a result directory: :func:`lock_directory` holds an exclusive lock on
its ``.ascl-bench.lock`` for the whole run (the operating system releases it if the process
dies), and a second writer is refused. Rows that repeat an episode index (files written before
the lock existed) are dropped with a warning by :func:`unique_rows`, the first row kept. Every
file except the episodes file is written to a temporary name first and renamed into place, so a
reader never sees half a file; the episodes file loses at most a torn last line to a kill, and
:func:`read_rows` drops (and with ``repair`` cuts) that line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ascl_env.atomic import atomic_write, atomic_write_json

if TYPE_CHECKING:
    from ascl_env.bench.runner import EpisodePlan

RUN_FILE = "run.json"
EPISODES_FILE = "episodes.jsonl"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
LOOKUP_PLOT = "lookup_rate_by_kind.png"
RESULT_FILES = (RUN_FILE, EPISODES_FILE, REPORT_JSON, REPORT_MD, LOOKUP_PLOT)
LOCK_FILE = ".ascl-bench.lock"

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
SAFETY_PLOT = "safety_vs_utility.png"


class RunError(RuntimeError):
    """A run could not go on; finished episodes are already saved."""


class RunIncomplete(RunError):
    """A run stopped before its plan was done (the agent or endpoint kept failing); the finished
    episodes are saved and the same command resumes it."""


class ReportError(ValueError):
    """A result directory cannot be reported on (missing or unusable files)."""


# --------------------------------------------------------------------------- the writer's lock


@contextmanager
def lock_directory(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``out_dir`` (created if missing) while the block runs.

    :class:`RunError` at once when another process holds it: two runs appending to one
    episodes file would double-count every episode.
    """
    from filelock import FileLock, Timeout

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        raise RunError(
            f"{out_dir} is in use by another ascl-bench run (lock {out_dir / LOCK_FILE} is "
            "held); wait for it to finish or use another --out"
        ) from exc
    try:
        yield out_dir
    finally:
        lock.release()


# --------------------------------------------------------------------------- episodes file


def unique_rows(rows: Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """``rows`` without those repeating an earlier row's episode index, with a warning naming
    ``where`` and how many went (only two writers at once make them)."""
    seen: set[int] = set()
    keep: list[dict[str, Any]] = []
    for row in rows:
        if row["episode"] not in seen:
            seen.add(row["episode"])
            keep.append(row)
    if len(keep) < len(rows):
        warnings.warn(
            f"{where}: {len(rows) - len(keep)} rows repeat an earlier row's episode index "
            "(two runs wrote this file at once?); the first row of each episode is kept",
            stacklevel=2,
        )
    return keep


HEAVY_FIELDS = ("messages", "parse_errors", "timing", "retrieved_rule_ids")
"""Row fields no metric reads (the transcript, timing): reports read rows without them."""

_SHARED = ("agent", "task_kind", "category", "source", "rules_mode", "judge", "response_class")
"""Row fields with few distinct values: one string object each (sys.intern) in memory."""


class Row(Mapping[str, Any]):
    """A read-only episode row as :func:`read_rows` gives it: ``row[key]``, ``row.get(key)``,
    ``key in row``, ``dict(row)``; equal to the dict with the same items.

    The values sit in a tuple and the key-to-position table is shared by every row with the
    same keys: a dict per row costs about 1.2 KB for a row's 30-odd keys, this about 0.3 KB, so
    a report over 100,000 episodes holds about 90 MB less (issue 26, point 8).
    """

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: dict[str, int], values: tuple[Any, ...]) -> None:
        self._keys = keys
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[self._keys[key]]

    def get(self, key: str, default: Any = None) -> Any:
        position = self._keys.get(key)
        return default if position is None else self._values[position]

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Row({dict(self)!r})"


class _Compactor:
    """Turns parsed rows into :class:`Row` objects sharing key tables, few-valued strings and
    repeated floats (each ``json.loads`` makes its own: 24 bytes each, about 7 a row)."""

    MAX_FLOATS = 4096  # distinct float values shared; later new ones are kept as they are

    def __init__(self, omit: Collection[str]) -> None:
        self.omit = frozenset(omit)
        self.shapes: dict[tuple[str, ...], dict[str, int]] = {}
        self.floats: dict[tuple[float, float], float] = {}

    def _keys(self, names: tuple[str, ...]) -> dict[str, int]:
        keys = self.shapes.get(names)
        if keys is None:
            keys = self.shapes[names] = {sys.intern(k): i for i, k in enumerate(names)}
        return keys

    def _float(self, value: float) -> float:
        key = (value, math.copysign(1.0, value))  # 0.0 and -0.0 stay apart
        shared = self.floats.get(key)
        if shared is not None:
            return shared
        if len(self.floats) < self.MAX_FLOATS:
            self.floats[key] = value
        return value

    def _mapping(self, data: dict[str, Any], omit: Collection[str] = ()) -> Row:
        names = tuple(k for k in data if k not in omit)
        values = []
        for key in names:
            value = data[key]
            if type(value) is float:
                value = self._float(value)
            elif key in _SHARED and isinstance(value, str):
                value = sys.intern(value)
            elif key == "generations" and isinstance(value, list):
                value = tuple(self._mapping(g) if isinstance(g, dict) else g for g in value)
            values.append(value)
        return Row(self._keys(names), tuple(values))

    def __call__(self, row: dict[str, Any]) -> Row:
        return self._mapping(row, self.omit)


def read_rows(
    path: str | os.PathLike, *, repair: bool = False, omit: Collection[str] = ()
) -> list[Row]:
    """Rows of an episodes JSONL file, read line by line (read-only :class:`Row` mappings);
    ``[]`` if it does not exist.

    A last line without its newline, or one that is not valid JSON, is what a killed writer
    leaves: it is dropped (and cut from the file when ``repair``). A bad line elsewhere is an
    error naming the line. ``omit`` names fields left out of every row (e.g.
    :data:`HEAVY_FIELDS`), so that a large file's rows fit in memory.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows: list[Row] = []
    compact = _Compactor(omit)
    good_bytes = 0
    torn: RunError | None = None  # a bad line: only the file's last line may be one
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if torn is not None:
                raise torn
            complete = line.endswith(b"\n")
            if not line.strip():
                good_bytes += len(line) if complete else 0
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("episode"), int):
                    raise ValueError("not an episode row (no integer 'episode')")
            except ValueError as exc:
                torn = RunError(f"{path}, line {number}: {exc}")
                torn.__cause__ = exc
                continue
            if not complete:
                break  # complete JSON but no newline: the writer died before finishing the line
            rows.append(compact(row))
            good_bytes += len(line)
    if repair and good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return rows


class EpisodeWriter:
    """Appends episode rows to an episodes file, one flushed JSON line each."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


# --------------------------------------------------------------------------- run.json


def plan_fingerprint(plans: Sequence[EpisodePlan]) -> str:
    """A short hash of which task and seed each episode index gets."""
    text = json.dumps([[p.index, p.task.id, p.seed] for p in plans])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tasks_fingerprint(plans: Sequence[EpisodePlan]) -> str:
    """A short hash of the content of the plan's tasks (prompt, kind, answer, category, source),
    so that a resume after a task file was edited is refused even when the ids stayed."""
    digest = hashlib.sha256()
    for task in sorted({p.task.id: p.task for p in plans}.values(), key=lambda t: t.id):
        text = json.dumps(task.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        digest.update(text.encode() + b"\n")
    return digest.hexdigest()[:16]


TASKS_KEY = "tasks_sha256"
"""The configuration key of :func:`tasks_fingerprint` (absent from run.json files before it)."""


def prepare_directory(
    out_dir: str | os.PathLike,
    config: dict[str, Any],
    *,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create or reuse ``out_dir`` for ``config``; returns the run record to extend.

    :class:`RunError` when ``run.json`` is unreadable or holds another configuration (naming
    the fields that differ). What is compared is
    :func:`ascl_env.bench.provenance.comparable`: the configuration without endpoint URLs, plus
    the model and judge identity of ``provenance``. ``overwrite`` deletes the earlier results
    first. A new record starts with ``provenance``; a resumed one keeps its first.
    """
    from ascl_env.bench.provenance import comparable

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in RESULT_FILES:
            (out_dir / name).unlink(missing_ok=True)
    path = out_dir / RUN_FILE
    if not path.exists():
        return {"config": config, "provenance": provenance, "invocations": []}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        previous = record["config"]
        previous_provenance = record.get("provenance")
        if not isinstance(previous, dict):
            raise TypeError("'config' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path} is unreadable ({exc}); pass --overwrite to start afresh") from exc
    if provenance is None:
        old, new = previous, config
    else:
        old = comparable(previous, previous_provenance)
        new = comparable(config, provenance)
    if TASKS_KEY not in previous:  # written before task content was hashed: not comparable
        new = {k: v for k, v in new.items() if k != TASKS_KEY}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        details = "; ".join(
            f"{k}: the content of the tasks (prompt, answer, kind, category) changed since"
            if k == TASKS_KEY
            else f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
            for k in changed
        )
        raise RunError(
            f"{out_dir} holds results of a different configuration ({details}); "
            "use another --out, or --overwrite to discard them"
        )
    return record


def clean_episodes(path: str | os.PathLike) -> int:
    """Before a resume: drop errored rows (their episodes run again) and rows repeating an
    episode index (:func:`unique_rows`); how many went. The file is rewritten (atomically, line
    by line) only when a row goes."""
    rows = read_rows(path, repair=True, omit=HEAVY_FIELDS)
    keep = [row for row in unique_rows(rows, str(path)) if not is_errored(row)]
    if len(keep) == len(rows):
        return 0
    wanted = {row["episode"] for row in keep}

    def rewrite(tmp: str) -> None:
        with open(path, "rb") as source, open(tmp, "wb") as target:
            for line in source:
                if not line.strip():
                    continue
                row = json.loads(line)
                if row["episode"] in wanted and not is_errored(row):
                    wanted.discard(row["episode"])  # the first row of an episode only
                    target.write(line)

    atomic_write(path, rewrite)
    return len(rows) - len(keep)


def is_errored(row: dict[str, Any]) -> bool:
    """Whether an episode row records an episode that failed (kept, rerun on resume)."""
    return bool(row.get("error"))


def write_run(out_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    return atomic_write_json(Path(out_dir) / RUN_FILE, record)


def load_run(out_dir: str | os.PathLike) -> dict[str, Any]:
    """``run.json`` of a result directory; :class:`ReportError` if missing or not JSON."""
    path = Path(out_dir) / RUN_FILE
    if not path.is_file():
        raise ReportError(f"{out_dir} is not a result directory: {RUN_FILE} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from exc
