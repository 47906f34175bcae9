"""RuleBase loading (bundled, YAML, JSON, JSONL) and every validation error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pydantic
import pytest
import yaml

from ascl_env.rules import Rule, RuleBase, RuleBaseError

ISSUE_CATEGORIES = {
    "violent_crime_weapons",
    "cbrn_weapons",
    "cyber_attacks_malware",
    "fraud_scams",
    "self_harm_suicide",
    "sexual_content_minors",
    "hate_speech",
    "harassment_bullying",
    "privacy_surveillance",
    "illegal_drugs",
    "extremism_terrorism",
    "misinformation_elections",
    "regulated_advice",
    "intellectual_property",
    "dangerous_challenges",
}

RULES = [
    {"id": "a-1", "category": "cat_a", "title": "First", "text": "Refuse x. Allowed: y."},
    {"id": "b-1", "category": "cat_b", "title": "Second", "text": "Refuse z. Allowed: w."},
    {"id": "a-2", "category": "cat_a", "title": "Third", "text": "Refuse v. Allowed: u."},
]


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def write_rules(tmp_path: Path, rules: list, name: str = "rules.yaml") -> Path:
    if name.endswith(".jsonl"):
        return write(tmp_path, name, "".join(json.dumps(r) + "\n" for r in rules))
    if name.endswith(".json"):
        return write(tmp_path, name, json.dumps({"rules": rules}))
    return write(tmp_path, name, yaml.safe_dump({"rules": rules}))


# --- the bundled rule base ---------------------------------------------------------------------


def test_bundled_rule_base_size_and_categories():
    rule_base = RuleBase.load()
    assert len(rule_base) >= 100
    assert ISSUE_CATEGORIES <= set(rule_base.categories)
    counts = {c: sum(r.category == c for r in rule_base) for c in rule_base.categories}
    assert min(counts.values()) >= 5, counts


def test_bundled_rules_say_what_to_refuse_and_what_stays_allowed():
    for rule in RuleBase.load():
        text = rule.text.lower()
        assert "allowed" in text, rule.id
        assert re.search(r"\b(refuse|never|do not|decline)\b", text), rule.id
        assert len(text.split()) >= 25, rule.id


def test_bundled_rules_are_distinct():
    rule_base = RuleBase.load()
    assert len({r.title for r in rule_base}) == len(rule_base)
    assert len({r.text for r in rule_base}) == len(rule_base)


# --- the RuleBase API --------------------------------------------------------------------------


def test_iteration_len_get_and_categories(tmp_path):
    rule_base = RuleBase.load(write_rules(tmp_path, RULES))
    assert len(rule_base) == 3
    assert [r.id for r in rule_base] == ["a-1", "b-1", "a-2"]
    assert rule_base.rules[1] is rule_base.get("b-1")
    assert rule_base.categories == ["cat_a", "cat_b"]
    with pytest.raises(KeyError, match="no rule with id 'zzz'"):
        rule_base.get("zzz")


def test_rules_and_rule_base_are_immutable(tmp_path):
    rule_base = RuleBase.load(write_rules(tmp_path, RULES))
    with pytest.raises(pydantic.ValidationError):
        rule_base.rules[0].text = "changed"
    with pytest.raises(pydantic.ValidationError):
        rule_base.rules = ()


def test_surrounding_whitespace_is_stripped(tmp_path):
    rules = [{**RULES[0], "title": "  Padded  ", "text": "\n  Refuse x.  \n"}]
    rule = next(iter(RuleBase.load(write_rules(tmp_path, rules))))
    assert (rule.title, rule.text) == ("Padded", "Refuse x.")


@pytest.mark.parametrize("name", ["r.yaml", "r.yml", "r.json", "r.jsonl", "R.YAML"])
def test_every_format_loads_the_same_rules(tmp_path, name):
    loaded = RuleBase.load(write_rules(tmp_path, RULES, name))
    assert [r.model_dump() for r in loaded] == RULES


@pytest.mark.parametrize("name", ["list.yaml", "list.json"])
def test_a_bare_list_of_rules_is_accepted(tmp_path, name):
    path = write(tmp_path, name, json.dumps(RULES))  # JSON is valid YAML
    assert [r.id for r in RuleBase.load(path)] == ["a-1", "b-1", "a-2"]


def test_jsonl_skips_blank_lines(tmp_path):
    body = "\n" + json.dumps(RULES[0]) + "\n\n   \n" + json.dumps(RULES[1]) + "\n"
    assert len(RuleBase.load(write(tmp_path, "r.jsonl", body))) == 2


def test_load_accepts_str_and_pathlike(tmp_path):
    path = write_rules(tmp_path, RULES)
    assert RuleBase.load(str(path)) == RuleBase.load(path)


def test_direct_construction_validates_too():
    rules = [Rule(**RULES[0]), Rule(**RULES[0])]
    with pytest.raises(pydantic.ValidationError, match="duplicate id 'a-1'"):
        RuleBase(rules=rules)
    assert len(RuleBase(rules=[Rule(**r) for r in RULES])) == 3


# --- validation errors: each names the file, the rule and the field ---------------------------


def bad(rule_index: int, **changes) -> list[dict]:
    rules = [dict(r) for r in RULES]
    for key, value in changes.items():
        if value is ...:
            del rules[rule_index][key]
        else:
            rules[rule_index][key] = value
    return rules


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            bad(2, id="a-1"),
            [r"rules\[2\] \(id 'a-1'\), field 'id'", "duplicate id", r"already used by rules\[0\]"],
        ),
        (bad(1, text=""), [r"rules\[1\] \(id 'b-1'\), field 'text'", "must not be empty"]),
        (bad(1, text="  \n\t "), [r"rules\[1\] \(id 'b-1'\), field 'text'", "whitespace only"]),
        (bad(0, title="   "), [r"rules\[0\] \(id 'a-1'\), field 'title'", "must not be empty"]),
        (bad(1, text=...), [r"rules\[1\] \(id 'b-1'\), field 'text'", "missing required field"]),
        (bad(1, id=...), [r"rules\[1\], field 'id'", "missing required field"]),
        (
            bad(0, severity="high"),
            [
                r"rules\[0\] \(id 'a-1'\), field 'severity'",
                "unknown field",
                "allowed fields are id, category, title, text",
            ],
        ),
        (bad(2, id=7), [r"rules\[2\], field 'id'", "must be a string, got int"]),
        (bad(1, text=["a", "list"]), [r"field 'text'", "must be a string, got list"]),
        (bad(1, category=None), [r"field 'category'", "must be a string, got null"]),
        (bad(0, id="has space"), [r"field 'id'", "without whitespace"]),
        (bad(0, category="Cyber Attacks"), [r"field 'category'", "snake_case"]),
        (bad(0, category="cyber__attacks"), [r"field 'category'", "snake_case"]),
        (["not a mapping", *RULES], [r"rules\[0\]", "a rule must be a mapping", "got str"]),
        ([], ["contains no rules"]),
    ],
    ids=[
        "duplicate-id",
        "empty-text",
        "whitespace-text",
        "blank-title",
        "missing-text",
        "missing-id",
        "unknown-key",
        "int-id",
        "list-text",
        "null-category",
        "spaced-id",
        "category-not-snake",
        "category-double-underscore",
        "rule-not-mapping",
        "no-rules",
    ],
)
def test_validation_errors_name_file_rule_and_field(tmp_path, rules, expected):
    path = write_rules(tmp_path, rules, "broken.yaml")
    with pytest.raises(RuleBaseError) as info:
        RuleBase.load(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for pattern in expected:
        assert re.search(pattern, message), (pattern, message)


def test_all_problems_are_reported_at_once(tmp_path):
    rules = bad(0, text="")
    rules[2]["colour"] = "red"
    message = str(pytest.raises(RuleBaseError, RuleBase.load, write_rules(tmp_path, rules)).value)
    assert "2 problems" in message
    assert "rules[0] (id 'a-1'), field 'text'" in message
    assert "rules[2] (id 'a-2'), field 'colour'" in message


def test_a_single_broken_rule_is_not_also_reported_as_no_rules(tmp_path):
    message = str(
        pytest.raises(
            RuleBaseError, RuleBase.load, write_rules(tmp_path, [RULES[0] | {"text": ""}])
        ).value
    )
    assert "field 'text'" in message and "no rules" not in message


def test_jsonl_errors_name_the_line(tmp_path):
    body = json.dumps(RULES[0]) + "\n\n" + json.dumps({**RULES[1], "text": " "}) + "\n"
    path = write(tmp_path, "r.jsonl", body)
    with pytest.raises(RuleBaseError, match=r"r\.jsonl: line 3 \(id 'b-1'\), field 'text'"):
        RuleBase.load(path)


def test_jsonl_duplicate_names_both_lines(tmp_path):
    path = write_rules(tmp_path, [RULES[0], RULES[1], RULES[0]], "r.jsonl")
    with pytest.raises(
        RuleBaseError,
        match=r"line 3 \(id 'a-1'\), field 'id': duplicate id, "
        r"already used by line 1",
    ):
        RuleBase.load(path)


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("r.yaml", "rules: [\n  {id: a\n", r"malformed YAML at line \d+, column \d+"),
        ("r.json", '{"rules": [', r"malformed JSON at line 1, column \d+"),
        ("r.jsonl", json.dumps(RULES[0]) + "\n{oops\n", r"line 2: malformed JSON at column 2"),
        (
            "r.yaml",
            "just a string",
            "expected a list of rules or a mapping with a 'rules' key, got str",
        ),
        ("r.yaml", "", "expected a list of rules .* got null"),
        ("r.yaml", "version: 1\n", "the mapping has no 'rules' key"),
        ("r.json", '{"rules": "all of them"}', "'rules' must be a list of rules, got str"),
        (
            "r.yaml",
            yaml.safe_dump({"rules": RULES, "owner": "me"}),
            "unknown top-level key 'owner'",
        ),
        ("r.yaml", "rules: " + "1" * 5000, "malformed YAML: Exceeds the limit"),
    ],
    ids=[
        "yaml-syntax",
        "json-syntax",
        "jsonl-syntax",
        "scalar-root",
        "empty-file",
        "no-rules-key",
        "rules-not-a-list",
        "extra-top-level-key",
        "yaml-int-over-digit-limit",
    ],
)
def test_malformed_files(tmp_path, name, content, pattern):
    path = write(tmp_path, name, content)
    with pytest.raises(RuleBaseError, match=pattern) as info:
        RuleBase.load(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        (
            "r.yaml",
            "rules:\n  - id: a\n    text: x\n    text: y\n",
            r"malformed YAML at line 4, column 5: duplicate key 'text'",
        ),
        ("r.json", '{"rules": [{"id": "a", "id": "b"}]}', "malformed JSON: duplicate key 'id'"),
        (
            "r.jsonl",
            '{"id": "a", "title": "t", "title": "u"}\n',
            "line 1: malformed JSON: duplicate key 'title'",
        ),
    ],
)
def test_duplicate_keys_are_rejected_not_overwritten(tmp_path, name, content, pattern):
    with pytest.raises(RuleBaseError, match=pattern):
        RuleBase.load(write(tmp_path, name, content))


@pytest.mark.parametrize("name", ["rules.txt", "rules.csv", "rules"])
def test_unsupported_extension(tmp_path, name):
    path = write(tmp_path, name, "whatever")
    with pytest.raises(
        RuleBaseError,
        match=r"unsupported rule-base file type .*\.yaml, \.yml, "
        r"\.json, \.jsonl",
    ):
        RuleBase.load(path)


def test_missing_file_and_directory_are_unreadable(tmp_path):
    with pytest.raises(RuleBaseError, match=r"nope\.yaml: cannot read rule-base file"):
        RuleBase.load(tmp_path / "nope.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(RuleBaseError, match=r"dir\.yaml: cannot read rule-base file"):
        RuleBase.load(tmp_path / "dir.yaml")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules:\n  - id: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RuleBaseError, match=r"latin1\.yaml: not UTF-8 text"):
        RuleBase.load(path)


def test_rule_base_error_is_a_value_error():
    assert issubclass(RuleBaseError, ValueError)
