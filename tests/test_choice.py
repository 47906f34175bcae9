"""Multiple-choice judging: the letter extractor (examples and properties) and its scoring."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ascl_env.judges.choice import extract_choice, judge_choice, option_letters
from ascl_env.rewards import keyword_judgement
from ascl_env.tasks import Task
from ascl_env.tasks.paper_sets import format_choice_prompt

# Ways a model states one letter L (the answer formats the issue names and their kin).
FORMATS = [
    "\\boxed{{{L}}}",
    "So the answer is \\boxed{{{L}}}.",
    "\\boxed{{({L})}}",
    "$\\boxed{{\\text{{{L}}}}}$",
    "Answer: {L}",
    "**Answer:** {L}",
    "The answer is {L}.",
    "The answer is ({L}).",
    "The correct answer is **{L}**",
    "Final answer: option {L}",
    "({L})",
    "{L}",
    "{L}) because it fits",
    "I would pick ({L}) here.",
]
# Prose that names no option letter (lower case only: never a letter token).
PROSE = st.text(alphabet=string.ascii_lowercase + " ,;\n", max_size=80)


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("The answer is A or C", 4, None),
        ("\\boxed{A, C}", 4, None),
        ("Answer: B and D", 4, None),
        ("the answer is a bit subtle", 4, None),
        ("Answer: E", 4, None),  # not an option of a four-option question
        ("I am not sure.", 4, None),
        ("\\boxed{42}", 4, None),
        ("(A) is tempting but (B) is right", 4, None),  # two markers, no stated answer
        ("A) 20 moles\nB) 25 moles\nC) 15 moles\nD) 5 moles", 4, None),  # the options restated
        ("A) 2.0\n\nThe correct answer is D) 2.0", 4, "D"),
        ("Answer: I think it's wrong", 10, None),  # the pronoun is not option I
        ("Answer: I", 10, "I"),
        ("<think>The answer is A.</think>The answer is C.", 4, "C"),
        ("<think>\\boxed{A}</think>Answer: D", 4, "D"),
        ("First I thought the answer is A. Then: the answer is C.", 4, "C"),
        ("The answer is B. I checked it twice.", 4, "B"),
    ],
)
def test_examples(text: str, n: int, expected: str | None) -> None:
    assert extract_choice(text, n) == expected


def test_a_box_may_hold_the_options_text() -> None:
    assert extract_choice("\\boxed{carbon dioxide}", 3, ["oxygen", "carbon dioxide", "neon"]) == "B"
    assert extract_choice("\\boxed{gas}", 3, ["oxygen", "carbon dioxide", "neon"]) is None


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(2, 10),
    data=st.data(),
    fmt=st.sampled_from(FORMATS),
    before=PROSE,
)
def test_every_format_gives_its_letter(n: int, data: st.DataObject, fmt: str, before: str) -> None:
    letter = data.draw(st.sampled_from(option_letters(n)))
    text = fmt.format(L=letter)
    if not fmt.startswith(("(", "{")):  # leading-letter formats must stay at the start
        text = f"{before}\n{text}"
    assert extract_choice(text, n) == letter


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 10), data=st.data(), early=st.sampled_from(FORMATS[4:10]))
def test_the_boxed_final_answer_wins(n: int, data: st.DataObject, early: str) -> None:
    first, last = data.draw(st.lists(st.sampled_from(option_letters(n)), min_size=2, max_size=2))
    text = f"{early.format(L=first)}\nOn reflection, \\boxed{{{last}}}"
    assert extract_choice(text, n) == last


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 10), data=st.data(), join=st.sampled_from([" or ", ", ", " and ", "/"]))
def test_several_letters_are_no_answer(n: int, data: st.DataObject, join: str) -> None:
    a, b = data.draw(st.lists(st.sampled_from(option_letters(n)), min_size=2, max_size=2,
                              unique=True))  # fmt: skip
    assert extract_choice(f"Answer: {a}{join}{b}", n) is None
    assert extract_choice(f"\\boxed{{{a}{join}{b}}}", n) is None


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 9), fmt=st.sampled_from(FORMATS), data=st.data())
def test_a_letter_past_the_options_is_no_answer(n: int, fmt: str, data: st.DataObject) -> None:
    letter = data.draw(st.sampled_from(string.ascii_uppercase[n:]))
    if letter == "I" and fmt == "{L}) because it fits":
        return
    assert extract_choice(fmt.format(L=letter), n) is None


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 10), data=st.data())
def test_restating_the_options_is_no_answer(n: int, data: st.DataObject) -> None:
    options = data.draw(st.lists(PROSE.filter(str.strip), min_size=n, max_size=n))
    listing = "\n".join(
        f"{letter}) {text}" for letter, text in zip(option_letters(n), options, strict=True)
    )
    assert extract_choice(listing, n) is None


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=400), n=st.integers(1, 26))
def test_never_raises_and_only_returns_options(text: str, n: int) -> None:
    assert extract_choice(text, n) in (None, *option_letters(n))


@settings(max_examples=200, deadline=None)
@given(text=PROSE, n=st.integers(2, 10))
def test_lower_case_prose_names_no_option(text: str, n: int) -> None:
    assert extract_choice(text, n) is None


def test_judge_choice_and_the_reward_branch() -> None:
    options = ["3", "4", "5", "6"]
    task = Task(
        id="mc-1",
        kind="math",
        prompt=format_choice_prompt("What is 2 + 2?", options),
        answer="B",
        choices=tuple(options),
    )
    assert judge_choice("The answer is (B).", task)
    assert not judge_choice("The answer is (C).", task)
    assert not judge_choice("Answer: B or C", task)
    # scored by the choice judge, not math-verify ("4" is the right number, but no letter)
    right = keyword_judgement(task, "\\boxed{B}")
    assert right.correct is True and right.judge == "choice"
    assert keyword_judgement(task, "The answer is 4.").correct is False
    with pytest.raises(ValueError, match="not a multiple-choice task"):
        judge_choice("A", Task(id="m", kind="math", prompt="p", answer="4"))


def test_env_scores_a_multiple_choice_episode() -> None:
    from ascl_env.env import ASCLEnv

    task = Task(
        id="mc-2",
        kind="math",
        prompt=format_choice_prompt("Which is a gas?", ["iron", "helium", "salt"]),
        answer="B",
        choices=("iron", "helium", "salt"),
    )
    env = ASCLEnv(tasks=[task], rules_mode="none")
    env.reset(seed=0)
    *_, info = env.step("Helium is a noble gas. Answer: B")
    assert info["correct"] is True and info["utility"] == 1.0
    env.reset(seed=0)
    *_, info = env.step("Answer: A")
    assert info["correct"] is False
