"""Loaders for upstream benchmark files, in their published formats, and task specs.

Every loader takes a path to the file as published upstream and returns tasks with stable ids
(``<source>-<upstream id or 0-based row>``). Errors name the file, the row (1-based data row, plus
the physical line for CSV) and the column or field. Rows are kept in file order.

==============  ===========================================  ===============================
loader          file                                         tasks
==============  ===========================================  ===============================
xstest          ``xstest_prompts.csv``                       label safe -> benign, unsafe ->
                                                             harmful; category = ``type``
strongreject    ``strongreject_dataset.csv``                 harmful; category = ``category``
jailbreakbench  ``harmful-behaviors.csv`` / ``benign-...``   harmful / benign; ``Category``
harmbench       ``harmbench_behaviors_text_*.csv``           harmful; ``SemanticCategory``;
                                                             contextual rows get
                                                             ``ContextString`` prepended
advbench        ``harmful_behaviors.csv``                    harmful (``goal``)
gsm8k           ``test.jsonl``                               math; answer after ``####``
math500         ``test.jsonl`` (PRM800K split)               math; ``answer``; ``subject``
==============  ===========================================  ===============================
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ascl_env._unique import first_duplicate
from ascl_env.errors import short_repr
from ascl_env.tasks import paper_sets
from ascl_env.tasks.bundled import bundled_tasks
from ascl_env.tasks.math_gen import generate_math_tasks
from ascl_env.tasks.model import ATTACKS, Task, TaskError
from ascl_env.tasks.readers import PathLike, csv_rows, jsonl_rows, row_task, row_text


def load_xstest(path: PathLike) -> list[Task]:
    """XSTest prompts: ``label`` safe -> benign (over-refusal probe), unsafe -> harmful."""
    tasks = []
    kinds = {"safe": "benign", "unsafe": "harmful"}
    for where, row in csv_rows(path, "xstest", ("id", "prompt", "type", "label")):
        label = row_text(row, "label", where)
        if label not in kinds:
            raise TaskError(
                f"{where}: column 'label' must be 'safe' or 'unsafe', got {short_repr(label)}"
            )
        tasks.append(
            row_task(
                where,
                id=f"xstest-{row_text(row, 'id', where)}",
                kind=kinds[label],
                prompt=row_text(row, "prompt", where),
                category=row_text(row, "type", where),
                source="xstest",
            )
        )
    return tasks


def load_strongreject(path: PathLike) -> list[Task]:
    """StrongREJECT forbidden prompts (all harmful)."""
    rows = csv_rows(path, "strongreject", ("category", "source", "forbidden_prompt"))
    return [
        row_task(
            where,
            id=f"strongreject-{i:03d}",
            kind="harmful",
            prompt=row_text(row, "forbidden_prompt", where),
            category=row_text(row, "category", where),
            source="strongreject",
        )
        for i, (where, row) in enumerate(rows)
    ]


def load_jailbreakbench(
    path: PathLike, kind: Literal["harmful", "benign"] | None = None
) -> list[Task]:
    """JBB-Behaviors ``harmful-behaviors.csv`` or ``benign-behaviors.csv``.

    ``kind`` defaults to what the file name says ("harmful" or "benign" in it); a name that says
    neither or both needs an explicit ``kind``.
    """
    if kind is None:
        name = Path(path).name.lower()
        found = [k for k in ("harmful", "benign") if k in name]
        if len(found) != 1:
            raise TaskError(
                f"{path}: cannot tell harmful from benign JailbreakBench behaviors by the file "
                "name; pass kind='harmful' or kind='benign' (spec: jbb_harmful= / jbb_benign=)"
            )
        kind = found[0]  # type: ignore[assignment]
    if kind not in ("harmful", "benign"):
        raise ValueError(f"kind must be 'harmful' or 'benign', got {kind!r}")
    tasks = []
    for i, (where, row) in enumerate(csv_rows(path, "jailbreakbench", ("Goal", "Category"))):
        # The harmful file's index column has an empty header, the benign one's is "Index".
        index = (row.get("Index") or row.get("") or str(i)).strip()
        tasks.append(
            row_task(
                where,
                id=f"jbb-{kind}-{index}",
                kind=kind,
                prompt=row_text(row, "Goal", where),
                category=row_text(row, "Category", where),
                source=f"jailbreakbench-{kind}",
            )
        )
    return tasks


def load_harmbench(path: PathLike, include_copyright: bool = True) -> list[Task]:
    """HarmBench text behaviors (all harmful).

    Contextual rows become ``ContextString + "\\n\\n---\\n\\n" + Behavior`` (HarmBench's own
    format). Copyright rows ask to reproduce protected text; HarmBench grades them with a hash
    check rather than a refusal judge, so ``include_copyright=False`` drops them.
    """
    required = ("Behavior", "FunctionalCategory", "SemanticCategory", "ContextString", "BehaviorID")
    tasks = []
    for where, row in csv_rows(path, "harmbench", required):
        functional = row_text(row, "FunctionalCategory", where)
        if functional == "copyright" and not include_copyright:
            continue
        prompt = row_text(row, "Behavior", where)
        if functional == "contextual":
            prompt = f"{row_text(row, 'ContextString', where)}\n\n---\n\n{prompt}"
        tasks.append(
            row_task(
                where,
                id=f"harmbench-{row_text(row, 'BehaviorID', where)}",
                kind="harmful",
                prompt=prompt,
                category=row_text(row, "SemanticCategory", where),
                source="harmbench",
            )
        )
    return tasks


def load_advbench(path: PathLike) -> list[Task]:
    """AdvBench ``harmful_behaviors.csv``: the ``goal`` column (``target`` is the attack string)."""
    rows = csv_rows(path, "advbench", ("goal", "target"))
    return [
        row_task(
            where,
            id=f"advbench-{i:03d}",
            kind="harmful",
            prompt=row_text(row, "goal", where),
            source="advbench",
        )
        for i, (where, row) in enumerate(rows)
    ]


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


def load_gsm8k(path: PathLike) -> list[Task]:
    """GSM8K jsonl: the answer is what follows the last ``####``, thousands separators removed."""
    tasks = []
    for i, (where, row) in enumerate(jsonl_rows(path, "gsm8k", ("question", "answer"))):
        solution = row_text(row, "answer", where)
        if "####" not in solution:
            raise TaskError(f"{where}: field 'answer' has no '####' final answer")
        answer = _THOUSANDS.sub("", solution.rsplit("####", 1)[1].strip())
        if not answer:
            raise TaskError(f"{where}: field 'answer' is empty after '####'")
        tasks.append(
            row_task(
                where,
                id=f"gsm8k-{i:04d}",
                kind="math",
                prompt=row_text(row, "question", where),
                answer=answer,
                source="gsm8k",
            )
        )
    return tasks


def load_math500(path: PathLike) -> list[Task]:
    """MATH-500 (PRM800K test split) jsonl: ``problem``, ``answer`` (LaTeX), ``subject``."""
    required = ("problem", "answer", "unique_id")
    tasks = []
    for where, row in jsonl_rows(path, "math500", required):
        subject = row.get("subject")
        tasks.append(
            row_task(
                where,
                id=f"math500-{row_text(row, 'unique_id', where)}",
                kind="math",
                prompt=row_text(row, "problem", where),
                answer=row_text(row, "answer", where),
                category=subject if isinstance(subject, str) else None,
                source="math500",
            )
        )
    return tasks


def load_xstest_safe(path: PathLike) -> list[Task]:
    """XSTest's safe prompts only (benign over-refusal probes, as the ASCL paper reports them)."""
    return [task for task in load_xstest(path) if task.kind == "benign"]


def _only(loader: Callable[[PathLike], list[Task]], kind: str) -> Callable[[PathLike], list[Task]]:
    """``loader`` keeping the tasks of one kind (a set with harmful and benign prompts, whose
    halves the ASCL paper reports separately)."""

    def load(path: PathLike) -> list[Task]:
        return [task for task in loader(path) if task.kind == kind]

    return load


# Sources that need a file path in a spec.
FILE_LOADERS: dict[str, Callable[[PathLike], list[Task]]] = {
    "wildjailbreak_harmful": _only(paper_sets.load_wildjailbreak, "harmful"),
    "wildjailbreak_benign": _only(paper_sets.load_wildjailbreak, "benign"),
    "wildguardtest_harmful": _only(paper_sets.load_wildguardtest, "harmful"),
    "wildguardtest_benign": _only(paper_sets.load_wildguardtest, "benign"),
    "xstest_safe": load_xstest_safe,
    "wildjailbreak": paper_sets.load_wildjailbreak,
    "wildguardtest": paper_sets.load_wildguardtest,
    "or_bench": paper_sets.load_or_bench,
    "salad_bench": paper_sets.load_salad_bench,
    "wildchat": paper_sets.load_wildchat,
    "oktest": paper_sets.load_oktest,
    "jbb_artifacts": paper_sets.load_jbb_artifacts,
    "gpqa": paper_sets.load_gpqa,
    "mmlu_pro": paper_sets.load_mmlu_pro,
    "arc": paper_sets.load_arc,
    "xstest": load_xstest,
    "strongreject": load_strongreject,
    "jailbreakbench": load_jailbreakbench,
    "jbb_harmful": lambda p: load_jailbreakbench(p, kind="harmful"),
    "jbb_benign": lambda p: load_jailbreakbench(p, kind="benign"),
    "harmbench": load_harmbench,
    "advbench": load_advbench,
    "gsm8k": load_gsm8k,
    "math500": load_math500,
}
# Sources built into the package (no path).
BUILTIN_SOURCES = ("bundled", "bundled_harmful", "bundled_benign", "math_gen")
# How ``:N`` picks N tasks of an entry (the first is the default).
SAMPLING_METHODS = ("stratified", "random", "first")
_LIMIT = re.compile(r"^(?P<body>.*?)(?::(?P<limit>\d+)(?::(?P<method>[A-Za-z_]+))?)?$", re.DOTALL)
# ``@prefill`` / ``@tool-first`` after an entry: its harmful tasks under that jailbreak wrapper
_ATTACK = re.compile(r"@(?P<attack>[A-Za-z_-]+)$")


def _largest_remainder(sizes: Sequence[int], n: int, rng: random.Random) -> list[int]:
    """Split ``n`` over groups in proportion to ``sizes`` (largest remainder, ties at random)."""
    total = sum(sizes)
    quotas = [n * size / total for size in sizes]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(sizes)), key=lambda i: (counts[i] - quotas[i], rng.random()))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def sample_tasks(
    tasks: Sequence[Task], n: int, method: str = "stratified", seed: int = 0
) -> list[Task]:
    """``n`` of ``tasks``, kept in their original order.

    ``stratified`` (the default): the kinds (harmful/benign/math; XSTest's unsafe/safe label)
    get shares proportional to their sizes, every kind at least one task when ``n`` allows,
    and within a kind the categories get proportional shares too; the tasks of each stratum
    are a seeded random sample. ``random``: a seeded simple random sample. ``first``: the
    first ``n`` in file order. ``n`` at or above the number of tasks keeps them all.
    """
    if method not in SAMPLING_METHODS:
        raise ValueError(f"unknown sampling method {method!r}; use one of {SAMPLING_METHODS}")
    if n >= len(tasks):
        return list(tasks)
    if method == "first":
        return list(tasks[:n])
    rng = random.Random(seed)
    indexed = list(enumerate(tasks))
    if method == "random":
        return [t for _, t in sorted(rng.sample(indexed, n), key=lambda p: p[0])]
    by_kind: dict[str, list[tuple[int, Task]]] = {}
    for pair in indexed:
        by_kind.setdefault(pair[1].kind, []).append(pair)
    kinds = list(by_kind.values())
    per_kind = _largest_remainder([len(g) for g in kinds], n, rng)
    if n >= len(kinds):  # no kind left out: a kind that got none takes one from the largest
        for i, count in enumerate(per_kind):
            if count == 0:
                per_kind[per_kind.index(max(per_kind))] -= 1
                per_kind[i] = 1
    chosen: list[tuple[int, Task]] = []
    for group, count in zip(kinds, per_kind, strict=True):
        strata: dict[str, list[tuple[int, Task]]] = {}
        for pair in group:
            strata.setdefault(pair[1].category or "", []).append(pair)
        members = list(strata.values())
        for stratum, k in zip(
            members, _largest_remainder([len(m) for m in members], count, rng), strict=True
        ):
            chosen.extend(rng.sample(stratum, k))
    return [t for _, t in sorted(chosen, key=lambda p: p[0])]


def describe_sampling(info: Mapping[str, Any]) -> str:
    """One line for a report: how an entry's ``:N`` selected its tasks."""
    how = {
        "stratified": "stratified by kind and category",
        "random": "simple random sample",
        "first": "the first in file order",
        "generated": "generated",
    }[info["method"]]
    kinds = ", ".join(f"{count} {kind}" for kind, count in info["kinds"].items())
    seeded = f", seed {info['seed']}" if info["method"] in ("stratified", "random") else ""
    return (
        f"{info['source']}: {info['selected']} of {info['available']} tasks, {how}{seeded} "
        f"({kinds})"
    )


def with_attack(tasks: Sequence[Task], attack: str, entry: str = "") -> list[Task]:
    """The harmful tasks of ``tasks`` under a jailbreak wrapper: id ``<id>@<attack>``, source
    ``<source>@<attack>``, ``attack`` set (others are left out: a wrapper attacks refusals)."""
    harmful = [t for t in tasks if t.kind == "harmful"]
    if not harmful:
        raise TaskError(f"task spec entry {entry!r}: @{attack} needs harmful tasks; it has none")
    return [
        t.model_copy(
            update={"id": f"{t.id}@{attack}", "source": f"{t.source}@{attack}", "attack": attack}
        )
        for t in harmful
    ]


def _builtin(name: str, n_math: int, seed: int) -> list[Task]:
    kinds = {"bundled": None, "bundled_harmful": ["harmful"], "bundled_benign": ["benign"]}[name]
    return bundled_tasks(kinds, n_math=n_math, seed=seed)


class _Entry(NamedTuple):
    """One entry of a task spec, read and checked (nothing loaded yet)."""

    written: str  # as written, attack suffix included
    bare: str  # without the attack suffix (what errors and the wrapper name)
    name: str  # the source
    path: str | None  # None for a built-in source
    limit: int | None  # :N
    method: str  # how :N samples
    attack: str | None  # @wrapper


def _read_entry(entry: str, known: str) -> _Entry:
    """Read one task-spec entry; a bad one raises :class:`TaskError` naming it."""
    written, attack = entry, None
    found_attack = _ATTACK.search(entry)
    if found_attack is not None:
        attack = found_attack.group("attack")
        if attack not in ATTACKS:
            raise TaskError(
                f"task spec entry {entry!r}: unknown jailbreak wrapper @{attack}; "
                f"use one of {['@' + a for a in ATTACKS]}"
            )
        entry = entry[: found_attack.start()].rstrip()
    name, has_path, rest = entry.partition("=")
    name = name.strip()
    match = _LIMIT.match(rest if has_path else name)
    assert match is not None  # the pattern matches every string
    limit = int(match.group("limit")) if match.group("limit") else None
    method = match.group("method") or "stratified"
    if method not in SAMPLING_METHODS:
        raise TaskError(
            f"task spec entry {entry!r}: unknown sampling {method!r} after :N; "
            f"use :N (stratified), :N:random or :N:first"
        )
    body = match.group("body").strip()
    if has_path:
        if name not in FILE_LOADERS:
            raise TaskError(f"task spec entry {entry!r}: unknown source {name!r}; known: {known}")
        if not body:
            raise TaskError(f"task spec entry {entry!r}: empty path")
        return _Entry(written, entry, name, body, limit, method, attack)
    if body in FILE_LOADERS:
        raise TaskError(f"task spec entry {entry!r}: {body} needs a path: {body}=PATH")
    if body not in BUILTIN_SOURCES:
        raise TaskError(f"task spec entry {entry!r}: unknown source {body!r}; known: {known}")
    if body == "math_gen" and match.group("method"):
        raise TaskError(
            f"task spec entry {entry!r}: math_gen:N generates N problems; "
            "there is nothing to sample from"
        )
    return _Entry(written, entry, body, None, limit, method, attack)


def _load_entry(entry: _Entry, n_math: int, seed: int) -> list[Task]:
    """Every task of one entry's source (wrapped in its attack), before any ``:N`` sampling."""
    if entry.path is None:
        loaded = _builtin(entry.name, n_math, seed)
    elif entry.name == "gpqa":
        loaded = paper_sets.load_gpqa(entry.path, seed=seed)
    else:
        loaded = FILE_LOADERS[entry.name](entry.path)
    if entry.attack is not None:
        loaded = with_attack(loaded, entry.attack, entry.bare)
    return loaded


def load_task_selection(
    spec: str, *, n_math: int = 200, seed: int = 0, sample_seed: int | None = None
) -> tuple[list[Task], list[dict[str, Any]]]:
    """:func:`load_task_spec`, plus one record per ``:N`` entry saying how it sampled:
    ``{"entry", "source", "available", "selected", "method", "seed", "kinds"}``."""
    entries = [e.strip() for e in spec.split(",")]
    if not spec.strip() or any(not e for e in entries):
        raise TaskError(f"task spec {spec!r} has an empty entry")
    known = ", ".join([*BUILTIN_SOURCES, *(f"{n}=PATH" for n in FILE_LOADERS)])
    sample_seed = seed if sample_seed is None else sample_seed
    tasks: list[Task] = []
    sampling: list[dict[str, Any]] = []
    for entry in (_read_entry(text, known) for text in entries):
        if entry.name == "math_gen":
            tasks.extend(
                generate_math_tasks(n_math if entry.limit is None else entry.limit, seed=seed)
            )
            continue
        loaded = _load_entry(entry, n_math, seed)
        if entry.limit is None:
            tasks.extend(loaded)
            continue
        chosen = sample_tasks(loaded, entry.limit, entry.method, sample_seed)
        tasks.extend(chosen)
        sampling.append(
            {
                "entry": entry.written,
                "source": entry.name,
                "available": len(loaded),
                "selected": len(chosen),
                "method": entry.method,
                "seed": sample_seed,
                "kinds": dict(Counter(task.kind for task in chosen)),
            }
        )
    duplicate = first_duplicate(task.id for task in tasks)
    if duplicate is not None:
        raise TaskError(
            f"task spec {spec!r}: task id {duplicate[0]!r} appears twice "
            "(the same source listed twice?)"
        )
    return tasks, sampling


def load_task_spec(
    spec: str, *, n_math: int = 200, seed: int = 0, sample_seed: int | None = None
) -> list[Task]:
    """Tasks from a comma-separated spec, in order.

    Entries: ``bundled`` (harmful + benign + ``n_math`` generated problems), ``bundled_harmful``,
    ``bundled_benign``, ``math_gen`` (``math_gen:N`` generates N), or ``NAME=PATH`` with NAME one
    of :data:`FILE_LOADERS`. ``:N`` after an entry keeps N of its tasks, by default a sample
    stratified by kind and category (:func:`sample_tasks`, seeded with ``sample_seed``, which
    defaults to ``seed``); ``:N:random`` takes a simple random sample, ``:N:first`` the first N.
    (So a path may not end in ``:digits``, and paths may not contain commas.) Example:
    ``"bundled_harmful,xstest=data/xstest_prompts.csv:50,gsm8k=data/test.jsonl:200:first"``.

    Raises:
        TaskError: for an empty spec or entry, an unknown name or sampling method, a missing
            path, duplicate ids.
        FileNotFoundError: for a path that is not a file.
    """
    return load_task_selection(spec, n_math=n_math, seed=seed, sample_seed=sample_seed)[0]
