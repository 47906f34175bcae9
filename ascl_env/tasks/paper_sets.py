"""Loaders for the ASCL paper's other evaluation sets, in the formats their publishers distribute.

Each takes a path (nothing is downloaded) and returns tasks whose kind comes from the set's own
labels. Errors name the file, the row and the field, like :mod:`ascl_env.tasks.loaders`.

=============  ===========================================  ====================================
loader         file (upstream)                              tasks
=============  ===========================================  ====================================
wildjailbreak  ``eval.tsv`` / ``train.tsv`` (TSV)           ``data_type`` *_harmful -> harmful,
                                                            *_benign -> benign
wildguardtest  ``wildguard_test.parquet`` (or .jsonl/.json)  ``prompt_harm_label`` harmful ->
                                                            harmful, unharmful -> benign
or_bench       ``or-bench-hard-1k.csv``, ``-80k``, ``-toxic``  hard/80k -> benign, toxic ->
                                                            harmful (by file name)
salad_bench    ``base_set.json``, ``attack_enhanced_set``,  harmful (``question`` / ``augq`` /
               ``defense_enhanced_set.json``                ``daugq``); ``1-category``
wildchat       WildChat toxic subset: CSV with ``question``  harmful
               (STAR-1's cache) or WildChat rows with
               ``conversation`` (first user turn)
oktest         ``OKTest.csv`` (``prompt``)                   benign (over-refusal probes)
jbb_artifacts  JailbreakBench ``attack-artifacts/METHOD/     harmful: the attack prompt; source
               .../MODEL.json`` (or the shared JSONL)       ``jbb-METHOD``
gpqa           ``gpqa_diamond.csv`` (``gpqa_main``, ...)     multiple choice; options shuffled
                                                            with the seed (per ``Record ID``)
mmlu_pro       HF rows as JSON array / JSONL / parquet      multiple choice, up to 10 options
arc            ``ARC-Challenge-Test.jsonl`` (AI2 release)   multiple choice; numeric labels
               or the HF parquet                            become letters by position
=============  ===========================================  ====================================

A multiple-choice task is a ``math`` task with ``choices`` and the gold letter as ``answer``
(:func:`format_choice_prompt` writes its prompt; :mod:`ascl_env.judges.choice` scores it).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ascl_env.errors import short_repr
from ascl_env.tasks.model import Task, TaskError
from ascl_env.tasks.readers import (
    PathLike,
    csv_rows,
    existing_file,
    jsonl_rows,
    row_task,
    row_text,
)

CHOICE_INSTRUCTION = "Answer with the letter of the correct option."


def format_choice_prompt(question: str, options: Sequence[str]) -> str:
    """The prompt of a multiple-choice task: the question, ``A) ...`` lines, the instruction."""
    lines = [f"{string.ascii_uppercase[i]}) {option}" for i, option in enumerate(options)]
    return f"{question.strip()}\n\n" + "\n".join(lines) + f"\n\n{CHOICE_INSTRUCTION}"


def _choice_task(
    where: str, *, id: str, question: str, options: Sequence[str], gold: int, **fields: Any
) -> Task:
    if len(options) < 2 or len(options) > 26:
        raise TaskError(
            f"{where}: a multiple-choice question needs 2 to 26 options, got {len(options)}"
        )
    if not 0 <= gold < len(options):
        raise TaskError(f"{where}: answer index {gold} is not one of the {len(options)} options")
    return row_task(
        where,
        id=id,
        kind="math",
        prompt=format_choice_prompt(question, options),
        answer=string.ascii_uppercase[gold],
        choices=tuple(options),
        **fields,
    )


# ----------------------------------------------------------------------------- generic rows


def _json_array_rows(
    path: PathLike, source: str, required: Sequence[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    file = existing_file(path, source)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise TaskError(f"{file}: not UTF-8 text: {exc}") from exc
    except ValueError as exc:
        raise TaskError(f"{file}: invalid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise TaskError(
            f"{file}: expected a JSON array of {source} rows, got {type(data).__name__}"
        )
    if not data:
        raise TaskError(f"{file}: {source} file has no rows (an empty array)")
    for number, row in enumerate(data, start=1):
        where = f"{file}: row {number}"
        if not isinstance(row, dict):
            raise TaskError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in required if k not in row]
        if missing:
            raise TaskError(f"{where}: missing field(s) {missing}")
        yield where, row


def _parquet_rows(
    path: PathLike, source: str, required: Sequence[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    file = existing_file(path, source)
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise TaskError(
            f"{file}: reading parquet needs pyarrow (pip install pyarrow), or convert the "
            f"file to JSONL"
        ) from exc
    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise TaskError(f"{file}: unreadable parquet: {exc}") from exc
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise TaskError(
            f"{file}: {source} file is missing column(s) {missing}; columns are "
            f"{short_repr(table.column_names, 300)}"
        )
    if table.num_rows == 0:
        raise TaskError(f"{file}: {source} file has no rows")
    for number, row in enumerate(table.to_pylist(), start=1):
        yield f"{file}: row {number}", row


def rows(
    path: PathLike, source: str, required: Sequence[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` of a CSV, TSV, JSON array, JSONL or parquet file, by its extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return csv_rows(path, source, required)
    if suffix == ".tsv":
        return csv_rows(path, source, required, delimiter="\t")
    if suffix == ".jsonl":
        return jsonl_rows(path, source, required)
    if suffix == ".json":
        return _json_array_rows(path, source, required)
    if suffix == ".parquet":
        return _parquet_rows(path, source, required)
    raise TaskError(
        f"{path}: cannot tell the {source} file's format from its extension {suffix!r}; "
        "use .csv, .tsv, .json, .jsonl or .parquet"
    )


def _row_id(row: dict[str, Any], column: str, fallback: int) -> str:
    value = row.get(column)
    return str(value).strip() if value not in (None, "") else f"{fallback:04d}"


# ----------------------------------------------------------------------------- safety sets


def load_wildjailbreak(path: PathLike) -> list[Task]:
    """WildJailbreak ``eval.tsv`` (``adversarial``, ``label``, ``data_type``) or ``train.tsv``
    (adds ``vanilla``; vanilla rows use it). Kind from ``data_type``; category = ``data_type``."""
    tasks = []
    for i, (where, row) in enumerate(rows(path, "wildjailbreak", ("data_type",))):
        data_type = row_text(row, "data_type", where)
        if not data_type.endswith(("_harmful", "_benign")):
            raise TaskError(
                f"{where}: column 'data_type' must end in _harmful or _benign, got "
                f"{short_repr(data_type)}"
            )
        column = "vanilla" if data_type.startswith("vanilla") else "adversarial"
        if column not in row:
            raise TaskError(f"{where}: a {data_type} row needs column {column!r}")
        tasks.append(
            row_task(
                where,
                id=f"wildjailbreak-{i:04d}",
                kind="harmful" if data_type.endswith("_harmful") else "benign",
                prompt=row_text(row, column, where),
                category=data_type,
                source="wildjailbreak",
            )
        )
    return tasks


def load_wildguardtest(path: PathLike) -> list[Task]:
    """WildGuardTest (``allenai/wildguardmix``, config ``wildguardtest``): ``prompt`` and
    ``prompt_harm_label`` (harmful -> harmful, unharmful -> benign); category = ``subcategory``.
    Rows without a prompt-harm label (the set keeps a few) are left out, as WildGuard's own
    evaluation does; rows repeat per response upstream, so a repeated prompt is kept once."""
    kinds = {"harmful": "harmful", "unharmful": "benign"}
    tasks = []
    seen: set[str] = set()
    for i, (where, row) in enumerate(rows(path, "wildguardtest", ("prompt", "prompt_harm_label"))):
        label = row["prompt_harm_label"]
        if label is None or (isinstance(label, float) and label != label):
            continue
        if label not in kinds:
            raise TaskError(
                f"{where}: field 'prompt_harm_label' must be harmful or unharmful, got "
                f"{short_repr(label)}"
            )
        prompt = row_text(row, "prompt", where)
        if prompt in seen:
            continue
        seen.add(prompt)
        sub = row.get("subcategory")
        tasks.append(
            row_task(
                where,
                id=f"wildguardtest-{i:04d}",
                kind=kinds[label],
                prompt=prompt,
                category=sub if isinstance(sub, str) and sub else None,
                source="wildguardtest",
            )
        )
    if not tasks:
        raise TaskError(f"{path}: no WildGuardTest row has a prompt_harm_label")
    return tasks


def load_or_bench(path: PathLike) -> list[Task]:
    """OR-Bench CSV (``prompt,category``): ``or-bench-hard-1k.csv`` and ``or-bench-80k.csv`` are
    benign look-alikes (refusing them is over-refusal), ``or-bench-toxic.csv`` is harmful; the
    file name decides."""
    name = Path(path).name.lower()
    found = [k for k in ("toxic", "hard", "80k") if k in name]
    if len(found) != 1:
        raise TaskError(
            f"{path}: cannot tell OR-Bench's toxic (harmful) file from its hard-1k / 80k "
            "(benign) files by the name; keep the upstream names or-bench-hard-1k.csv, "
            "or-bench-80k.csv, or-bench-toxic.csv"
        )
    kind = "harmful" if found[0] == "toxic" else "benign"
    tag = {"toxic": "toxic", "hard": "hard", "80k": "80k"}[found[0]]
    return [
        row_task(
            where,
            id=f"or-bench-{tag}-{i:04d}",
            kind=kind,
            prompt=row_text(row, "prompt", where),
            category=row_text(row, "category", where),
            source=f"or-bench-{tag}",
        )
        for i, (where, row) in enumerate(rows(path, "or_bench", ("prompt", "category")))
    ]


_SALAD = {  # file stem -> (prompt field, id fields)
    "base_set": ("question", ("qid",)),
    "attack_enhanced_set": ("augq", ("qid", "aid")),
    "small_attack_subset": ("augq", ("qid", "aid")),
    "defense_enhanced_set": ("daugq", ("qid", "did")),
}


def load_salad_bench(path: PathLike) -> list[Task]:
    """Salad-Data JSON arrays (all harmful): ``base_set.json`` (``question``),
    ``attack_enhanced_set.json`` / ``small_attack_subset.json`` (``augq``),
    ``defense_enhanced_set.json`` (``daugq``); category = ``1-category``. The file name picks the
    field; ``mcq_set.json`` is a judging set, not prompts, and is refused."""
    stem = Path(path).stem.lower()
    if stem not in _SALAD:
        raise TaskError(
            f"{path}: not a Salad-Data prompt file; expected one of "
            f"{[f'{s}.json' for s in _SALAD]} (mcq_set.json holds judging questions, not prompts)"
        )
    field, ids = _SALAD[stem]
    tasks = []
    for where, row in rows(path, "salad_bench", (field, *ids, "1-category")):
        key = "-".join(row_text(row, k, where) for k in ids)
        tasks.append(
            row_task(
                where,
                id=f"salad-{stem}-{key}",
                kind="harmful",
                prompt=row_text(row, field, where),
                category=row_text(row, "1-category", where),
                source="salad-bench" if stem == "base_set" else f"salad-bench-{stem}",
            )
        )
    return tasks


def _first_user_turn(conversation: Any, where: str) -> str:
    if isinstance(conversation, str):
        try:
            conversation = json.loads(conversation)
        except ValueError as exc:
            raise TaskError(f"{where}: field 'conversation' is not a JSON list: {exc}") from exc
    if isinstance(conversation, list):
        for turn in conversation:
            if isinstance(turn, dict) and turn.get("role") == "user":
                content = turn.get("content")
                if isinstance(content, str) and content.strip():
                    return content.strip()
    raise TaskError(f"{where}: field 'conversation' has no user turn with text")


def load_wildchat(path: PathLike) -> list[Task]:
    """WildChat's toxic subset (all harmful). Either the cache STAR-1's ``parse_wildchat`` writes
    (``question``, ``category``, ``category_score``) or WildChat-1M(-Full) rows
    (``conversation``, ``toxic``, ...): the first user turn of rows with ``toxic`` true."""
    tasks = []
    suffix = Path(path).suffix.lower()
    first = next(rows(path, "wildchat", ()))[1]
    if "question" in first:
        for i, (where, row) in enumerate(rows(path, "wildchat", ("question",))):
            category = row.get("category")
            tasks.append(
                row_task(
                    where,
                    id=f"wildchat-{i:04d}",
                    kind="harmful",
                    prompt=row_text(row, "question", where),
                    category=str(category) if category not in (None, "") else None,
                    source="wildchat-toxic",
                )
            )
        return tasks
    if "conversation" not in first:
        raise TaskError(
            f"{path}: a WildChat file needs a 'question' column (STAR-1's toxic cache) or "
            f"'conversation' rows (WildChat-1M); the first row has {short_repr(sorted(first))}"
        )
    for i, (where, row) in enumerate(rows(path, "wildchat", ("conversation", "toxic"))):
        toxic = row["toxic"]
        if suffix in (".csv", ".tsv"):
            toxic = str(toxic).strip().lower() == "true"
        if toxic is not True:
            continue
        tasks.append(
            row_task(
                where,
                id=f"wildchat-{_row_id(row, 'conversation_hash', i)}",
                kind="harmful",
                prompt=_first_user_turn(row["conversation"], where),
                source="wildchat-toxic",
            )
        )
    if not tasks:
        raise TaskError(f"{path}: no WildChat row has toxic == true")
    return tasks


def load_oktest(path: PathLike) -> list[Task]:
    """OKTest (``OKTest.csv``, one column ``prompt``): benign prompts with a harmful-looking word;
    refusing them is over-refusal. The publisher's trailing newlines are stripped."""
    return [
        row_task(
            where,
            id=f"oktest-{i:03d}",
            kind="benign",
            prompt=row_text(row, "prompt", where),
            source="oktest",
        )
        for i, (where, row) in enumerate(rows(path, "oktest", ("prompt",)))
    ]


def _jbb_artifact_rows(path: PathLike) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, jailbreak row, parameters) of an artifacts JSON file or the shared JSONL."""
    file = existing_file(path, "jbb_artifacts")
    if file.suffix.lower() == ".jsonl":
        for where, row in jsonl_rows(file, "jbb_artifacts", ("prompt", "meta")):
            meta = row["meta"] if isinstance(row["meta"], dict) else {}
            params = {"method": meta.get("method"), "model": meta.get("target_model")}
            index = str(row.get("id", "")).rsplit("/", 1)[-1]
            yield where, {**row, "index": index, "category": meta.get("category")}, params
        return
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TaskError(f"{file}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("jailbreaks"), list):
        raise TaskError(
            f"{file}: not a JailbreakBench artifact (expected an object with 'parameters' and a "
            "'jailbreaks' list)"
        )
    params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    for number, row in enumerate(data["jailbreaks"], start=1):
        where = f"{file}: jailbreaks[{number - 1}]"
        if not isinstance(row, dict) or "prompt" not in row:
            raise TaskError(f"{where}: expected an object with a 'prompt' field")
        yield where, row, params


def load_jbb_artifacts(path: PathLike) -> list[Task]:
    """JailbreakBench attack artifacts (PAIR, GCG, JBC, prompt_with_random_search, ...): each
    jailbreak's ``prompt`` is a harmful task, source ``jbb-METHOD``, category ``category``.
    Upstream files are ``attack-artifacts/METHOD/ATTACK_TYPE/MODEL.json``; the shared JSONL
    (``harm_labels/jbb_artifacts.jsonl``, method in ``meta``) is read too. Behaviours for which
    the attack produced no prompt (``prompt`` null) are left out."""
    tasks = []
    for i, (where, row, params) in enumerate(_jbb_artifact_rows(path)):
        if row.get("prompt") is None:
            continue
        method = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(params.get("method") or "unknown"))
        model = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(params.get("model") or "unknown"))
        index = row.get("index", i)
        category = row.get("category")
        tasks.append(
            row_task(
                where,
                id=f"jbb-{method}-{model}-{index}",
                kind="harmful",
                prompt=row_text(row, "prompt", where),
                category=category if isinstance(category, str) else None,
                source=f"jbb-{method}",
            )
        )
    if not tasks:
        raise TaskError(f"{path}: no jailbreak in the file has a prompt")
    return tasks


# ----------------------------------------------------------------------------- multiple choice


_GPQA = (
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
)


def load_gpqa(path: PathLike, seed: int = 0) -> list[Task]:
    """GPQA CSV (``gpqa_diamond.csv``, ``gpqa_main.csv``, ...): ``Question``, ``Correct Answer``,
    ``Incorrect Answer 1..3``. The four options are shuffled into A-D with ``random.Random`` seeded
    by ``seed`` and the row's ``Record ID`` (so a question's order does not depend on which others
    are loaded); category = ``High-level domain``."""
    tasks = []
    for i, (where, row) in enumerate(rows(path, "gpqa", _GPQA)):
        record = _row_id(row, "Record ID", i)
        options = [row_text(row, c, where) for c in _GPQA[1:]]
        order = list(range(4))
        random.Random(f"gpqa:{seed}:{record}").shuffle(order)
        domain = row.get("High-level domain")
        tasks.append(
            _choice_task(
                where,
                id=f"gpqa-{record}",
                question=row_text(row, "Question", where),
                options=[options[k] for k in order],
                gold=order.index(0),
                category=domain.strip() if isinstance(domain, str) and domain.strip() else None,
                source="gpqa",
            )
        )
    return tasks


def _options(value: Any, where: str, field: str) -> list[str]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskError(
            f"{where}: field {field!r} must be a list of strings, got {short_repr(value)}"
        )
    return value


def load_mmlu_pro(path: PathLike) -> list[Task]:
    """MMLU-Pro rows (``TIGER-Lab/MMLU-Pro``: parquet, or JSON array / JSONL of the same rows):
    ``question``, ``options`` (3-10), ``answer`` (letter), ``answer_index``; category =
    ``category``. Options keep their order, as in the publisher's evaluation."""
    required = ("question_id", "question", "options", "answer", "answer_index", "category")
    tasks = []
    for where, row in rows(path, "mmlu_pro", required):
        options = [o.strip() for o in _options(row["options"], where, "options")]
        gold = row["answer_index"]
        if not isinstance(gold, int) or isinstance(gold, bool):
            raise TaskError(f"{where}: field 'answer_index' must be an int, got {short_repr(gold)}")
        letter = row_text(row, "answer", where)
        if 0 <= gold < 26 and letter != string.ascii_uppercase[gold]:
            raise TaskError(
                f"{where}: field 'answer' {letter!r} disagrees with answer_index {gold}"
            )
        tasks.append(
            _choice_task(
                where,
                id=f"mmlu_pro-{row_text(row, 'question_id', where)}",
                question=row_text(row, "question", where),
                options=options,
                gold=gold,
                category=row_text(row, "category", where),
                source="mmlu_pro",
            )
        )
    return tasks


def load_arc(path: PathLike) -> list[Task]:
    """ARC (AI2's ``ARC-Challenge-Test.jsonl``: ``question.stem``, ``question.choices[].{text,
    label}``, ``answerKey``; or the HF parquet/JSON with ``question`` a string and ``choices``
    ``{text: [...], label: [...]}``). Options are lettered A, B, ... by position (22 questions use
    labels 1-4 upstream); the gold is the position of ``answerKey`` among the labels."""
    tasks = []
    for where, row in rows(path, "arc", ("id", "question", "answerKey")):
        question = row["question"]
        if isinstance(question, dict):
            stem, choices = question.get("stem"), question.get("choices")
            if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
                raise TaskError(f"{where}: field 'question.choices' must be a list of objects")
            texts = [c.get("text") for c in choices]
            labels = [c.get("label") for c in choices]
        else:
            stem, choices = question, row.get("choices")
            if not isinstance(choices, dict):
                raise TaskError(
                    f"{where}: field 'choices' must be {{text: [...], label: [...]}} when "
                    "'question' is a string"
                )
            texts = _options(choices.get("text"), where, "choices.text")
            labels = _options(choices.get("label"), where, "choices.label")
        if not isinstance(stem, str) or not stem.strip():
            raise TaskError(f"{where}: the question stem is empty or not text")
        if not all(isinstance(t, str) and t.strip() for t in texts) or len(texts) != len(labels):
            raise TaskError(f"{where}: every choice needs a text and a label")
        key = str(row["answerKey"]).strip()
        if key not in [str(label) for label in labels]:
            raise TaskError(f"{where}: field 'answerKey' {key!r} is none of the labels {labels}")
        tasks.append(
            _choice_task(
                where,
                id=f"arc-{row_text(row, 'id', where)}",
                question=stem,
                options=[t.strip() for t in texts],
                gold=[str(label) for label in labels].index(key),
                source="arc-challenge",
            )
        )
    return tasks
