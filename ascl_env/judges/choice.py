"""Multiple-choice judging (GPQA, MMLU-Pro, ARC-Challenge): which lettered option was picked?

:func:`extract_choice` reads the chosen letter from the visible text of a final answer (reasoning in
``<think>`` is dropped), trying, in order:

1. the last ``\\boxed{...}``: a single letter in it (``\\boxed{C}``, ``\\boxed{(C)}``,
   ``\\boxed{\\text{C}}``, ``\\boxed{C) 42}``), or an option's exact text;
2. the last "answer is C" / "Answer: C" / "the correct option is (C)" / "**Answer:** C" phrase;
3. an answer that *is* a letter: ``C``, ``(C)``, ``C.``, ``C) 42 ...`` at the start, with no
   option marker of another letter after it (``(X)``, or ``X)`` / ``X.`` opening a line: an
   answer that restates the option list names no single option);
4. exactly one distinct option marker in the whole text.

An answer that names several letters where one is expected (``\\boxed{A, C}``, "Answer: A or C")
or none at all gives ``None``, which :func:`judge_choice` counts as wrong. Only the letters of
the task's options count (A-D for four options); lower-case letters never do, so "the answer is
a bit subtle" names no option. Cost is linear in the scanned tail of the text
(:data:`MAX_RESPONSE_CHARS`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ascl_env.judges.math import _boxed_content
from ascl_env.judges.refusal import strip_think

if TYPE_CHECKING:
    from ascl_env.tasks import Task

__all__ = ["MAX_RESPONSE_CHARS", "extract_choice", "judge_choice", "option_letters"]

MAX_RESPONSE_CHARS = 100_000

# a letter as an answer: optional "option"/"choice", brackets, bold, \text{...}, then not a word
_LETTER = (
    r"(?i:option|choice|letter)?\s*[\(\[]?\s*(?:\\text(?:bf)?\{|\\mathrm\{)?\s*\**\s*"
    r"(?P<letter>[A-Z])\s*\**\s*\}?\s*[\)\]]?(?![A-Za-z0-9])"
)
_ANSWER_IS = re.compile(
    r"(?i:(?:final|correct|right|best)\s+(?:answer|option|choice)|answer)\s*\**\s*"
    r"(?i:is|would\s+be|will\s+be|should\s+be|:|=)?\s*\**\s*:?\s*(?i:therefore\s+)?" + _LETTER
)
# "... A or C", "A, C", "A and C", "A/C" right after an answer letter: several letters
_MORE = re.compile(
    r"\s*(?:,|/|&|\bor\b|\band\b)\s*[\(\[]?\s*\**(?P<letter>[A-Z])\**[\)\]]?(?![A-Za-z0-9])"
)
_LEADING = re.compile(r"^\s*\**\s*[\(\[]?(?P<letter>[A-Z])(?:[\)\]]|[.:](?=\s|$)|\s*$)")
# "Answer: I think it's B": the pronoun I, not option I
_PRONOUN = re.compile(r"\s+(?:think|believe|am|guess|would|will|can|need|should|must|feel|'m|'d)\b")
_MARKER = re.compile(r"\((?P<letter>[A-Z])\)|(?m:^[ \t]*\**[ \t]*(?P<label>[A-Z])[\).](?=\s))")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LETTER_TOKEN = re.compile(r"(?<![A-Za-z0-9\\])([A-Z])(?![A-Za-z0-9])")


def option_letters(n_options: int) -> str:
    """The letters of ``n_options`` options: ``"ABCD"`` for 4."""
    if not 1 <= n_options <= 26:
        raise ValueError(f"a multiple-choice question has 1 to 26 options, got {n_options}")
    return string.ascii_uppercase[:n_options]


def _normalise(text: str) -> str:
    return " ".join(text.split()).strip(" .").casefold()


def _from_box(content: str, letters: str, choices: Sequence[str] | None) -> str | None:
    inner = _TEXT_WRAPPER.sub(r"\1", content).strip()
    if choices:
        matches = [i for i, c in enumerate(choices) if _normalise(c) == _normalise(inner)]
        if len(matches) == 1 and len(_normalise(inner)) > 1:
            return letters[matches[0]]
    found = {m.group(1) for m in _LETTER_TOKEN.finditer(inner)}
    return found.pop() if len(found) == 1 and found <= set(letters) else None


def extract_choice(
    response: str, n_options: int, choices: Sequence[str] | None = None
) -> str | None:
    """The option letter ``response`` chose among ``n_options``, or ``None`` (none, several, or a
    letter that is not an option). ``choices`` (the option texts) lets a box hold an option's
    text instead of its letter."""
    letters = option_letters(n_options)
    text = strip_think(response)[-MAX_RESPONSE_CHARS:]
    box = _boxed_content(text)
    if box is not None:
        return _from_box(box, letters, choices)
    last = None
    for match in _ANSWER_IS.finditer(text):
        if not (match.group("letter") == "I" and _PRONOUN.match(text, match.end())):
            last = match
    if last is not None:
        picked = {last.group("letter")}
        more = _MORE.match(text, last.end())
        while more is not None:
            picked.add(more.group("letter"))
            more = _MORE.match(text, more.end())
        if len(picked) == 1 and picked <= set(letters):
            return picked.pop()
        return None
    # "(C)" anywhere, "C)" / "C." opening a line: a restated option list names several
    markers = {m.group("letter") or m.group("label") for m in _MARKER.finditer(text)}
    lead = _LEADING.match(text)
    if lead is not None:
        markers.add(lead.group("letter"))
        if len(markers) > 1:  # "(A) is tempting but (B) is right": no single answer
            return None
        return lead.group("letter") if lead.group("letter") in letters else None
    return markers.pop() if len(markers) == 1 and markers <= set(letters) else None


def judge_choice(response: str, task: Task) -> bool:
    """Whether ``response`` picked the gold option of the multiple-choice ``task``."""
    if task.choices is None or task.answer is None:
        raise ValueError(f"task {task.id!r} is not a multiple-choice task (no choices or answer)")
    return extract_choice(response, len(task.choices), task.choices) == task.answer
