"""The safety-rule lookup tool: its name, schema, call text, result text and error texts.

Everything an agent, the environment or a framework adapter needs to offer, write, read or
answer the lookup tool lives here, so the tool is defined once:

* :data:`TOOL_NAME` and :func:`tool_schema` (the OpenAI function schema offered to the model),
* :func:`format_tool_call` writes a Hermes call (what Qwen chat templates and verl's ``hermes``
  tool parser use); :func:`hermes_call` writes one for any name and arguments,
* :func:`read_query` reads a parsed call (:mod:`ascl_env.parsing`) as a lookup: the query, or the
  error text the tool answers with,
* :func:`format_rules` renders retrieved rules as the tool's result,
* :func:`split_think` separates reasoning (``<think>…</think>``) from visible text; the parser,
  the judges and the environment all use it, so they agree on what the model "said".

This module imports nothing heavy (no retriever, no judge), so harness and adapter code may import
it freely.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ascl_env.parsing import MalformedCall, ToolCall
    from ascl_env.retrieval import Hit

__all__ = [
    "ERROR_CHARS",
    "NO_RULES",
    "NO_TOOLS_ERROR",
    "MISSING_QUERY_ERROR",
    "TOOL_NAME",
    "RULE_MIN_CHARS",
    "error_result",
    "format_rules",
    "format_tool_call",
    "hermes_call",
    "malformed_call_error",
    "read_query",
    "split_think",
    "tool_schema",
    "unknown_tool_error",
]

TOOL_NAME = "lookup_safety_rules"
"""The tool's name, as offered in the schema and expected in calls."""

NO_RULES = "No safety rules matched."
"""The tool's result when no rule matches the query."""

MISSING_QUERY_ERROR = f'{TOOL_NAME} needs a non-empty string argument "query"'
NO_TOOLS_ERROR = "no tools are available in this episode; reply with your final answer"
ERROR_CHARS = 600
"""Bound on one tool-error message (``"Error: ..."``) shown to the model."""
RULE_MIN_CHARS = 120
"""A rule is shown only if at least this much of it fits the result's character budget."""


def tool_schema() -> dict[str, Any]:
    """The OpenAI function schema of the lookup tool (a fresh dict on every call)."""
    return {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": (
                "Search the safety rule base. Returns the most relevant rules: what to refuse, "
                "what stays allowed, and how to answer safely."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What the request is about, in a few words.",
                    }
                },
                "required": ["query"],
            },
        },
    }


def hermes_call(name: Any, arguments: Any, *, ensure_ascii: bool = True) -> str:
    """A Hermes ``<tool_call>`` block for any name and arguments (JSON, on its own lines).

    ``ensure_ascii=False`` keeps non-ASCII text as is instead of ``\\u`` escapes.
    """
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=ensure_ascii)
    return f"<tool_call>\n{payload}\n</tool_call>"


def format_tool_call(query: str) -> str:
    """A well-formed Hermes call of the lookup tool.

    >>> print(format_tool_call("pipe bomb"))
    <tool_call>
    {"name": "lookup_safety_rules", "arguments": {"query": "pipe bomb"}}
    </tool_call>
    """
    return hermes_call(TOOL_NAME, {"query": query})


def malformed_call_error(error: str) -> str:
    """The tool-error text for a ``<tool_call>`` block that could not be read."""
    return (
        f"could not parse the tool call: {error}. Write "
        f'<tool_call>{{"name": "{TOOL_NAME}", "arguments": {{"query": "..."}}}}</tool_call>'
    )


def unknown_tool_error(name: str) -> str:
    """The tool-error text for a call of a tool other than the lookup."""
    return f"unknown tool {name[:80]!r}; the only tool is {TOOL_NAME}"


def error_result(error: str) -> str:
    """What the model sees for an unusable call: ``"Error: ..."``, at most :data:`ERROR_CHARS`."""
    return f"Error: {error}"[:ERROR_CHARS]


def read_query(call: ToolCall | MalformedCall) -> tuple[str | None, str | None]:
    """Read a parsed call as a lookup: ``(query, None)`` or ``(None, error text)``.

    The error texts are the ones the environment answers with (see :func:`error_result`).
    """
    from ascl_env.parsing import MalformedCall

    if isinstance(call, MalformedCall):
        return None, malformed_call_error(call.error)
    if call.name != TOOL_NAME:
        return None, unknown_tool_error(call.name)
    query = call.arguments.get("query") if isinstance(call.arguments, Mapping) else None
    if not isinstance(query, str) or not query.strip():
        return None, MISSING_QUERY_ERROR
    return query, None


def format_rules(hits: Sequence[Hit], max_chars: int) -> tuple[str, list[str]]:
    """Render hits as ``[id] title\\ntext`` blocks within ``max_chars`` characters.

    Rules are kept in rank order; the first one that does not fit whole is cut (ending in "…")
    if at least :data:`RULE_MIN_CHARS` of it fit, and the rest are dropped. Returns the text
    (:data:`NO_RULES` when nothing is shown) and the ids of the rules shown.
    """
    blocks: list[str] = []
    shown: list[str] = []
    used = 0
    for hit in hits:
        block = f"[{hit.rule.id}] {hit.rule.title}\n{hit.rule.text.strip()}"
        room = max_chars - used - (2 if blocks else 0)
        if len(block) > room:
            if room >= RULE_MIN_CHARS:
                blocks.append(block[: room - 1] + "…")
                shown.append(hit.rule.id)
            break
        blocks.append(block)
        shown.append(hit.rule.id)
        used += len(block) + (2 if len(blocks) > 1 else 0)
    return ("\n\n".join(blocks) if blocks else NO_RULES), shown


# <think>, <thinking>, </think>, </thinking>; any case; whitespace allowed before ">".
_THINK_TAG = re.compile(r"<(/?)think(?:ing)?\s*>", re.IGNORECASE)


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
    for tag in _THINK_TAG.finditer(text):
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
