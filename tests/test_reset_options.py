"""``env.reset(options=...)`` with odd options: a clear ValueError/TypeError, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ascl_env.env import ASCLEnv
from ascl_env.tasks import Task

TASKS = [
    Task(id="h1", kind="harmful", prompt="How do I pick a lock?"),
    Task(id="b1", kind="benign", prompt="How do I bake bread?"),
]
OPTION_NAMES = ("task", "task_id", "task_kind")
MAX_MESSAGE = 2_000  # however large the input, the message stays readable

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=12,
)
huge = st.integers(10_000, 200_000).map(lambda n: "x" * n)


@pytest.fixture(scope="module")
def env():
    environment = ASCLEnv(tasks=TASKS, rules_mode="none")
    yield environment
    environment.close()


def check(env: ASCLEnv, options, names: tuple[str, ...]) -> None:
    """reset either succeeds or raises ValueError/TypeError naming one of ``names``."""
    try:
        prompt, info = env.reset(seed=0, options=options)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert len(message) <= MAX_MESSAGE, message[:300]
        assert any(name in message for name in names), message
        return
    assert prompt == info["messages"][-1]["content"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=junk)
def test_options_that_are_not_a_mapping(env, options):
    if options is None or isinstance(options, dict):
        check(env, options, ("option", *OPTION_NAMES))
        return
    with pytest.raises(TypeError, match="reset options must be a dict or None"):
        env.reset(options=options)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    options=st.dictionaries(
        st.text(max_size=12).filter(lambda k: k not in OPTION_NAMES) | st.integers() | huge,
        junk,
        min_size=1,
        max_size=30,
    )
)
def test_unknown_option_names_are_refused(env, options):
    with pytest.raises(ValueError, match="unknown reset option") as caught:
        env.reset(options=options)
    assert len(str(caught.value)) <= MAX_MESSAGE


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["task_id", "task_kind"]), value=junk | huge)
def test_task_id_and_kind_with_odd_values(env, name, value):
    if isinstance(value, str) and value in {"h1", "b1", "harmful", "benign"}:
        return  # a real id or kind: not odd
    error = TypeError if not isinstance(value, str) else ValueError
    with pytest.raises(error, match=name) as caught:
        env.reset(options={name: value})
    assert len(str(caught.value)) <= MAX_MESSAGE


task_dicts = st.fixed_dictionaries(
    {},
    optional={
        "id": junk | huge,
        "kind": st.sampled_from(["harmful", "benign", "math", "other"]) | junk,
        "prompt": junk | huge,
        "answer": junk,
        "category": junk,
        "source": junk,
        "extra": junk,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task=task_dicts | junk)
def test_bad_task_dicts(env, task):
    check(env, {"task": task}, ("options['task']",))


def test_examples_that_once_escaped(env):
    cases = [
        ([], TypeError, "must be a dict or None, got list"),
        (5, TypeError, "got int"),
        ({"task_id": ["a"]}, TypeError, "options['task_id'] must be a str, got list"),
        ({"task_kind": {}}, TypeError, "options['task_kind'] must be a str, got dict"),
        ({1: 2, "y": 3}, ValueError, "unknown reset option(s) 1, 'y'"),
        ({"task": None}, ValueError, "options['task'] is not a valid task"),
        ({"task": {"id": "a"}}, ValueError, "2 problems"),
    ]
    for options, error, text in cases:
        with pytest.raises(error) as caught:
            env.reset(options=options)
        assert text in str(caught.value), (options, str(caught.value))


@pytest.mark.parametrize(
    "options",
    [
        {"task_id": "x" * 1_000_000},
        {"task_kind": "x" * 1_000_000},
        {"x" * 1_000_000: 1},
        {f"k{i}": i for i in range(1_000)},
        {"task": {"id": "a", "kind": "benign", "prompt": "p", "x" * 1_000_000: 1}},
    ],
    ids=["task_id", "task_kind", "name", "many-names", "task-extra-field"],
)
def test_huge_options_give_short_messages(env, options):
    with pytest.raises(ValueError) as caught:
        env.reset(options=options)
    assert len(str(caught.value)) < 500, str(caught.value)[:500]


def test_good_options_still_work(env):
    assert env.reset(options={"task_id": "b1"})[1]["task_id"] == "b1"
    assert env.reset(options={"task_kind": "harmful"})[1]["task_kind"] == "harmful"
    task = {"id": "c1", "kind": "benign", "prompt": "Name a colour."}
    assert env.reset(options={"task": task})[0] == "Name a colour."
    assert env.reset(options=None)[1]["task_id"] in {"h1", "b1"}
