"""What an assistant turn is: reasoning and visible text, Hermes tool calls written and read.

One module owns the text format of a turn, so the environment, the judges, the scripted agents,
the adapters and the tests agree on it:

* :func:`split_think` separates reasoning (``<think>…</think>``) from visible text; the parser,
  the judges and the environment all use it, so they agree on what the model "said".
* :func:`write_call` writes a Hermes tool call, the one writer of ``<tool_call>`` text (scripted
  agents, adapters, the warm start and tests all call it); :func:`tool_calls_to_text` writes an
  OpenAI message's ``tool_calls`` back as that text.
* :func:`parse_action` reads raw assistant text into tool calls, visible content and diagnostics;
  :func:`read_turn` is how the environment reads one turn (too long, calls, empty or an answer).

The format is the one Qwen chat templates and verl's default ``hermes`` tool parser use::

    <tool_call>{"name": "<tool name>", "arguments": {"query": "..."}}</tool_call>

:func:`parse_action` is tolerant of what real models emit, and reports every deviation instead of
guessing silently:

* Reasoning is split off first, by :func:`split_think`: ``<think>...</think>`` (or
  ``<thinking>``, any case, whitespace before ``>`` allowed) blocks are not part of the answer
  and tool calls inside them are **not executed** (counted in ``ignored``). A ``</think>``
  without an open block means the chat template opened it, so everything before it is
  reasoning. An unclosed ``<think>`` makes the rest of the text reasoning (reported in
  ``ignored``). A think tag inside a ``<tool_call>`` block therefore also counts as reasoning.
* Inside ``<tool_call>`` tags: surrounding whitespace, a Markdown code fence (```` ```json ````),
  text before the ``{`` or after the matching ``}``, Python-style single-quoted pseudo-JSON,
  ``arguments`` given as a JSON string or named ``parameters``, and the OpenAI wrapper
  ``{"type": "function", "function": {...}}`` are accepted and listed in ``repairs``.
* A missing ``</tool_call>`` is accepted when the block ends at the end of the text or at the next
  ``<tool_call>`` (listed in ``repairs``).
* Several ``<tool_call>`` blocks in one turn are all returned, in order; the environment decides
  how many to execute.
* A block that cannot be read as a call becomes a :class:`MalformedCall` naming what is wrong.
* A call written without tags (``{"name": ..., "arguments": ...}`` in the answer) is not
  executed, but it is reported in ``ignored``.

Tags are matched case-insensitively. Parsing never evaluates model text: the single-quote fallback
is :func:`ast.literal_eval`, which only builds literals. This module imports nothing from the rest
of the package; what the lookup tool is (its name, schema, errors) lives in :mod:`ascl_env.lookup`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "THINK_TAG",
    "MalformedCall",
    "ParsedAction",
    "ToolCall",
    "Turn",
    "TurnKind",
    "parse_action",
    "read_turn",
    "split_think",
    "tool_calls_to_text",
    "write_call",
]

CALL_OPEN = "<tool_call>"
"""The tag that opens a Hermes tool call (closed by :data:`CALL_CLOSE`)."""
CALL_CLOSE = "</tool_call>"

THINK_TAG = re.compile(r"<(/?)think(?:ing)?\s*>", re.IGNORECASE)
"""A think tag as :func:`split_think` reads it: ``<think>``, ``<thinking>`` or their closing
tags, in any case, with whitespace allowed before ``>``; group 1 is ``"/"`` for a closing tag."""


# ----------------------------------------------------------------------------- writing


def write_call(name: Any, arguments: Any) -> str:
    """A Hermes ``<tool_call>`` block (the JSON on its own line), the one writer of call text.

    Non-ASCII text is kept as is (no ``\\u`` escapes), as models write it. ``name`` and
    ``arguments`` are written whatever they are, so a caller can pass on a malformed call for
    the environment to report.

    >>> print(write_call("get_weather", {"city": "Zürich"}))
    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Zürich"}}
    </tool_call>
    """
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{payload}\n{CALL_CLOSE}"


def tool_calls_to_text(content: str | None, tool_calls: Sequence[Mapping[str, Any]]) -> str:
    """Write server-parsed OpenAI ``message.tool_calls`` back as the Hermes text the env reads.

    Each call is ``{"function": {"name": ..., "arguments": ...}}`` (arguments as a JSON string or
    an object); they follow ``content`` on their own lines. Arguments that are not valid JSON are
    passed through as a string, so the env reports the malformed call instead of it being hidden
    here.
    """
    parts = [content] if content else []
    for call in tool_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass
        parts.append(write_call(function.get("name"), arguments))
    return "\n".join(parts)


# ----------------------------------------------------------------------------- reasoning


def split_think(text: str) -> tuple[str, str]:
    """Split raw assistant text into ``(reasoning, visible)``.

    The one definition of "reasoning" used by the parser, the judges and the environment:

    * every ``<think>…</think>`` (or ``<thinking>``) block is reasoning; tags match in any case
      and with whitespace before ``>`` (``<think >`` is a tag, not visible text);
    * a closing tag without an open block means the chat template opened the block in the
      prompt: everything before it is reasoning;
    * an unclosed block makes the rest of the text reasoning.

    Tool calls are not looked at: a ``<tool_call>`` inside reasoning stays reasoning. Neither part
    is stripped; reasoning pieces are joined with a newline. Linear time.

    >>> split_think("<think>Is this harmful?</think>Paris.")
    ('Is this harmful?', 'Paris.')
    >>> split_think("opened by the template</think > Answer.")
    ('opened by the template', ' Answer.')
    """
    reasoning, visible, _ = _split(text)
    return reasoning, visible


def _split(text: str) -> tuple[str, str, bool]:
    """(reasoning, visible, unclosed): ``unclosed`` when a ``<think>`` block never closed."""
    if "<" not in text:
        return "", text, False
    visible: list[str] = []
    thoughts: list[str] = []
    pos = 0
    open_at: int | None = None  # end of the opening tag of the block we are in
    for tag in THINK_TAG.finditer(text):
        closing = tag.group(1) == "/"
        if open_at is None and not closing:
            visible.append(text[pos : tag.start()])
            open_at = tag.end()
        elif open_at is not None and closing:
            thoughts.append(text[open_at : tag.start()])
            open_at = None
            pos = tag.end()
        elif closing:
            # A close without an open: the block was opened by the chat template.
            thoughts.extend(visible)
            thoughts.append(text[pos : tag.start()])
            visible = []
            pos = tag.end()
        # an open tag inside an open block is part of the reasoning
    unclosed = open_at is not None
    if unclosed:
        thoughts.append(text[open_at:])
    else:
        visible.append(text[pos:])
    return "\n".join(t for t in thoughts if t), "".join(visible), unclosed


# ----------------------------------------------------------------------------- reading

# group 1: "/" for a closing tag
_CALL_TAG = re.compile(r"<(/?)tool_call>", re.IGNORECASE)
_CALL_OPEN = re.compile(re.escape(CALL_OPEN), re.IGNORECASE)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL)
_UNTAGGED_CALL = re.compile(
    r"""["']name["']\s*:\s*["'][A-Za-z_][\w.-]*["']\s*,\s*["'](?:arguments|parameters)["']"""
)
_UNTAGGED_NOTE = "a tool call without <tool_call> tags was not executed"
_JSON = json.JSONDecoder()
_SNIPPET_CHARS = 200


@dataclass(frozen=True)
class ToolCall:
    """A call that was understood. ``arguments`` is whatever object the model gave."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class MalformedCall:
    """A ``<tool_call>`` block that could not be read as a call."""

    error: str
    snippet: str


@dataclass(frozen=True)
class ParsedAction:
    """The structure of one assistant turn.

    Attributes:
        calls: every ``<tool_call>`` block outside reasoning, in order.
        content: the visible text, outside ``<think>`` and tool-call blocks, stripped.
        repairs: deviations from strict Hermes JSON that were tolerated.
        ignored: things that looked like calls but were not returned (inside ``<think>``,
            untagged) and stray tags.
    """

    calls: tuple[ToolCall | MalformedCall, ...]
    content: str
    repairs: tuple[str, ...]
    ignored: tuple[str, ...]


TurnKind = Literal["too_long", "calls", "empty", "answer"]


class Turn(NamedTuple):
    """One assistant turn as the environment reads it (:func:`read_turn`)."""

    kind: TurnKind
    action: ParsedAction | None  # None for "too_long" (not parsed)

    @property
    def answer(self) -> str | None:
        """The visible text to judge: set for an ``"answer"`` turn only."""
        return self.action.content if self.kind == "answer" else None


def read_turn(text: str, max_chars: int) -> Turn:
    """How the environment reads one assistant turn (``ASCLEnv.step`` reads each turn once and
    hands the final one to :func:`ascl_env.scoring.score_episode`).

    The kinds (the parse is ``None`` for ``"too_long"``):

    * ``"too_long"``: more than ``max_chars`` characters, not parsed; a format error.
    * ``"calls"``: at least one tool call outside reasoning.
    * ``"empty"``: no calls and no visible text (nothing outside ``<think>``); a format error.
    * ``"answer"``: visible text, the final answer to judge.
    """
    if len(text) > max_chars:
        return Turn("too_long", None)
    parsed = parse_action(text)
    if parsed.calls:
        return Turn("calls", parsed)
    return Turn("answer" if parsed.content else "empty", parsed)


def parse_action(text: str) -> ParsedAction:
    """Split raw assistant text into tool calls, visible content and parse diagnostics."""
    if "<" not in text:  # fast path: no tags at all, the common final answer
        content = text.strip()
        untagged = "name" in content and _UNTAGGED_CALL.search(content) is not None
        return ParsedAction((), content, (), (_UNTAGGED_NOTE,) if untagged else ())
    reasoning, text, unclosed = _split(text)
    calls: list[ToolCall | MalformedCall] = []
    repairs: list[str] = []
    ignored: list[str] = []

    visible: list[str] = []
    in_call = False
    pos = 0
    for m in _CALL_TAG.finditer(text):
        closing = bool(m.group(1))
        if not in_call:
            visible.append(text[pos : m.start()])
            pos = m.end()
            if closing:
                ignored.append(f"stray {m.group(0)} tag ignored")
            else:
                in_call = True
        elif closing:
            calls.append(_parse_block(text[pos : m.start()], repairs))
            in_call, pos = False, m.end()
        else:
            repairs.append("missing </tool_call> before the next <tool_call>")
            calls.append(_parse_block(text[pos : m.start()], repairs))
            pos = m.end()
    if in_call:
        repairs.append("missing </tool_call> at the end of the text")
        calls.append(_parse_block(text[pos:], repairs))
    else:
        visible.append(text[pos:])
    if unclosed:
        ignored.append("unclosed <think>: the text after it was treated as reasoning")
    think_calls = len(_CALL_OPEN.findall(reasoning)) if "<" in reasoning else 0
    if think_calls:
        ignored.append(f"{think_calls} <tool_call> block(s) inside <think> not executed")

    content = "".join(visible).strip()
    if not calls and "name" in content and _UNTAGGED_CALL.search(content):
        ignored.append(_UNTAGGED_NOTE)
    return ParsedAction(tuple(calls), content, tuple(repairs), tuple(ignored))


def _parse_block(block: str, repairs: list[str]) -> ToolCall | MalformedCall:
    body = block.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
        repairs.append("code fence inside <tool_call> removed")
    start = body.find("{")
    if start < 0:
        return _malformed("no JSON object found", block)
    if body[:start].strip():
        repairs.append("text before the JSON object ignored")
    try:
        obj, end = _JSON.raw_decode(body, start)
    except RecursionError:
        return _malformed("JSON nested too deeply", block)
    except json.JSONDecodeError as exc:
        obj, end = _literal_object(body, start)
        if obj is None:
            return _malformed(f"invalid JSON ({exc.msg} at character {exc.pos - start})", block)
        repairs.append("single-quoted pseudo-JSON accepted")
    except ValueError as exc:  # well-formed but unconvertible, e.g. an int of 4300+ digits
        return _malformed(f"invalid JSON ({exc})", block)
    if body[end:].strip():
        repairs.append("text after the JSON object ignored")
    if not isinstance(obj, dict):
        return _malformed("expected a JSON object with 'name' and 'arguments'", block)
    if "name" not in obj and isinstance(obj.get("function"), dict):
        obj = obj["function"]
        repairs.append('OpenAI {"function": {...}} wrapper unwrapped')
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return _malformed("missing or empty 'name'", block)
    if "arguments" in obj:
        arguments = obj["arguments"]
    elif "parameters" in obj:
        arguments = obj["parameters"]
        repairs.append("'parameters' read as 'arguments'")
    else:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):  # ValueError includes json.JSONDecodeError
            return _malformed("'arguments' is a string that is not a JSON object", block)
        repairs.append("'arguments' given as a JSON string")
    if not isinstance(arguments, dict):
        return _malformed("'arguments' must be a JSON object", block)
    return ToolCall(name=name.strip(), arguments=arguments)


def _literal_object(body: str, start: int) -> tuple[Any, int]:
    """Read a Python-literal dict (single quotes) starting at ``start``; (None, 0) if impossible."""
    end = _matching_brace(body, start)
    if end is None:
        return None, 0
    try:
        return ast.literal_eval(body[start:end]), end
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, 0


def _matching_brace(body: str, start: int) -> int | None:
    """Index just past the ``}`` matching ``body[start]``, skipping quoted strings."""
    depth, quote, escaped = 0, "", False
    for i in range(start, len(body)):
        c = body[i]
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _malformed(error: str, block: str) -> MalformedCall:
    snippet = block.strip()
    if len(snippet) > _SNIPPET_CHARS:
        snippet = snippet[:_SNIPPET_CHARS] + "…"
    return MalformedCall(error=error, snippet=snippet)
