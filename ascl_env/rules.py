"""Safety rules: the pydantic models and the loader for rule-base files.

A rule says what to refuse, what stays allowed and how to answer safely. A rule base is an
ordered, immutable collection of rules with unique ids; its order is the tie-break order of
retrieval.

File formats accepted by :meth:`RuleBase.load`:

* YAML (``.yaml``/``.yml``) or JSON (``.json``): either a list of rule objects or a mapping with
  the single key ``rules`` holding that list.
* JSONL (``.jsonl``): one rule object per line; blank lines are skipped.

Each rule object has exactly the keys ``id``, ``category``, ``title`` and ``text``, all strings.
Anything else is rejected with a :class:`RuleBaseError` naming the file, the rule (index or line,
and id when known) and the field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Hashable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ascl_env._unique import first_duplicate
from ascl_env.errors import MAX_PROBLEMS, format_problems, short_repr

__all__ = ["Rule", "RuleBase", "RuleBaseError", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")
_BUNDLED_RESOURCE = "data/rules.yaml"
_RULE_FIELDS = ("id", "category", "title", "text")
_SNAKE_CASE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


class RuleBaseError(ValueError):
    """A rule base could not be loaded. The message names the file, the rule and the field."""


class Rule(BaseModel):
    """One safety rule.

    ``id`` is stable and unique within a rule base (e.g. ``"cyber-003"``); ``category`` is a
    snake_case harm category (e.g. ``"cyber_attacks_malware"``); ``text`` says what to refuse,
    what stays allowed and how to answer safely. Surrounding whitespace is stripped.
    """

    # strict: a YAML ``id: 7`` must be reported as a wrong type, not silently become "7".
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, str_strip_whitespace=True)

    id: str
    category: str
    title: str
    text: str

    @field_validator("id")
    @classmethod
    def _id_is_a_token(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise PydanticCustomError("rule_id", "must be a non-empty string without whitespace")
        return value

    @field_validator("category")
    @classmethod
    def _category_is_snake_case(cls, value: str) -> str:
        if not _SNAKE_CASE.fullmatch(value):
            raise PydanticCustomError(
                "rule_category",
                "must be snake_case (lowercase ASCII letters, digits and single underscores), "
                "e.g. 'cyber_attacks_malware'",
            )
        return value

    @field_validator("title", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value:
            raise PydanticCustomError("blank", "must not be empty or whitespace only")
        return value


class RuleBase(BaseModel):
    """An ordered, immutable collection of :class:`Rule` with unique ids.

    Iterating yields the rules in file order; ``len()`` is the number of rules. Build one with
    :meth:`load` (files, or the bundled rule base) or directly with ``RuleBase(rules=[...])``.
    Being immutable, a rule base can be shared freely between threads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = Field(min_length=1)
    _by_id: dict[str, Rule] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _index_unique_ids(self) -> RuleBase:
        duplicate = first_duplicate(rule.id for rule in self.rules)
        if duplicate is not None:
            rule_id, first, index = duplicate
            raise PydanticCustomError(
                "duplicate_id",
                "duplicate id '{rule_id}', already used by the rule at index {first}",
                {"rule_id": rule_id, "index": index, "first": first},
            )
        self._by_id = {rule.id: rule for rule in self.rules}
        return self

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> RuleBase:
        """Load a rule base from ``path`` (.yaml, .yml, .json or .jsonl); ``None`` = bundled.

        Raises :class:`RuleBaseError` for an unreadable, malformed or invalid file.
        """
        if path is None:
            resource = resources.files("ascl_env").joinpath(_BUNDLED_RESOURCE)
            return _parse(resource.read_text(encoding="utf-8"), ".yaml", f"bundled {resource}")
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise RuleBaseError(
                f"{file}: unsupported rule-base file type {suffix or '(no extension)'!r}; "
                f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
            )
        try:
            content = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            where = f"{exc.reason} at byte {exc.start}"
            raise RuleBaseError(f"{file}: not UTF-8 text ({where})") from exc
        except OSError as exc:
            reason = exc.strerror or exc
            raise RuleBaseError(f"{file}: cannot read rule-base file: {reason}") from exc
        return _parse(content, suffix, str(file))

    def __iter__(self) -> Iterator[Rule]:  # type: ignore[override]  # rules, not (field, value)
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; ``KeyError`` naming the id when there is none."""
        try:
            return self._by_id[rule_id]
        except KeyError:
            raise KeyError(f"no rule with id {rule_id!r} in this rule base") from None

    @property
    def categories(self) -> list[str]:
        """The distinct categories, in order of first appearance."""
        return list(dict.fromkeys(rule.category for rule in self.rules))


def _parse(content: str, suffix: str, source: str) -> RuleBase:
    if suffix == ".jsonl":
        records, line_numbers = _read_jsonl(content, source)
        data: Any = {"rules": records}
        where: Callable[[int], str] = lambda i: f"line {line_numbers[i]}"  # noqa: E731
    else:
        data = _read_document(content, suffix, source)
        if isinstance(data, list):
            data = {"rules": data}
        elif not isinstance(data, dict):
            raise RuleBaseError(
                f"{source}: expected a list of rules or a mapping with a 'rules' key, "
                f"got {_type_name(data)}"
            )
        records = data.get("rules")
        where = lambda i: f"rules[{i}]"  # noqa: E731
    try:
        return RuleBase.model_validate(data)
    except ValidationError as exc:
        rows = records if isinstance(records, list) else []
        raise RuleBaseError(_describe(exc, rows, source, where)) from None


def _read_document(content: str, suffix: str, source: str) -> Any:
    if suffix == ".json":
        try:
            return json.loads(content, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise RuleBaseError(
                f"{source}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except ValueError as exc:  # a duplicate key (_json_object), or an int of 4300+ digits
            raise RuleBaseError(f"{source}: malformed JSON: {exc}") from None
    try:
        return yaml.load(content, Loader=_StrictYamlLoader)  # noqa: S506  (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleBaseError(f"{source}: malformed YAML{at}: {problem}") from None
    except ValueError as exc:  # a scalar PyYAML cannot convert, e.g. an int of 4300+ digits
        raise RuleBaseError(f"{source}: malformed YAML: {exc}") from None


def _read_jsonl(content: str, source: str) -> tuple[list[Any], list[int]]:
    records: list[Any] = []
    line_numbers: list[int] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line, object_pairs_hook=_json_object))
        except json.JSONDecodeError as exc:
            raise RuleBaseError(
                f"{source}: line {number}: malformed JSON at column {exc.colno}: {exc.msg}"
            ) from None
        except ValueError as exc:  # a duplicate key (_json_object), or an int of 4300+ digits
            raise RuleBaseError(f"{source}: line {number}: malformed JSON: {exc}") from None
        line_numbers.append(number)
    return records, line_numbers


def _describe(
    exc: ValidationError, records: list[Any], source: str, where: Callable[[int], str]
) -> str:
    errors = exc.errors()
    if len(errors) > 1:
        # pydantic also reports "too short" when every rule failed; the rule errors say more
        errors = [err for err in errors if err["type"] != "too_short"]
    # only the problems that will be shown are described (a file may hold thousands)
    problems = [_describe_one(err, records, where) for err in errors[:MAX_PROBLEMS]]
    return f"{source}: {format_problems(problems, total=len(errors))}"


def _describe_one(err: Any, records: list[Any], where: Callable[[int], str]) -> str:
    loc, kind = err["loc"], err["type"]
    if kind == "duplicate_id":
        index, field = err["ctx"]["index"], "id"
        message = f"duplicate id, already used by {where(err['ctx']['first'])}"
    elif len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        index = loc[1]
        field = str(loc[2]) if len(loc) > 2 else None
        message = _message(err)
    elif loc == ("rules",) and kind == "too_short":
        return "contains no rules"
    elif loc == ("rules",) and kind == "missing":
        return "the mapping has no 'rules' key"
    elif loc == ("rules",) and kind == "tuple_type":
        return f"'rules' must be a list of rules, got {_type_name(err['input'])}"
    elif len(loc) == 1 and kind == "extra_forbidden":
        return f"unknown top-level key {short_repr(loc[0])}; the only allowed key is 'rules'"
    else:
        return f"{'.'.join(map(str, loc)) or 'rules'}: {_message(err)}"
    record = records[index] if index < len(records) else None
    rule_id = record.get("id") if isinstance(record, dict) else None
    label = where(index) + (f" (id {short_repr(rule_id)})" if isinstance(rule_id, str) else "")
    if field is None:
        return f"{label}: {message}"
    return f"{label}, field {field!r}: {message}"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "missing required field"
    if kind == "extra_forbidden":
        return f"unknown field; allowed fields are {', '.join(_RULE_FIELDS)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        fields = ", ".join(_RULE_FIELDS)
        return f"a rule must be a mapping of {fields}, got {_type_name(err['input'])}"
    if kind == "string_type":
        return f"must be a string, got {_type_name(err['input'])}"
    return err["msg"]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _StrictYamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe YAML loader that rejects duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate key {duplicates[0]!r}")
    return dict(pairs)
