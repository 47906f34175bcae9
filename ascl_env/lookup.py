"""The safety-rule lookup tool: its name, schema, description, query reading and result text.

Everything an agent, the environment or a framework adapter needs to offer, read or answer the
lookup tool lives here, so the tool is defined once:

* :data:`TOOL_NAME`, :data:`TOOL_DESCRIPTION`, :data:`QUERY_DESCRIPTION`, :func:`tool_schema`
  (the OpenAI function schema offered to the model) and :func:`tool_docstring` (the same
  description for frameworks that build a tool's schema from a method's docstring),
* :func:`read_query` reads a parsed call (:mod:`ascl_env.turns`) as a lookup: the query, or the
  error text the tool answers with,
* :func:`answer_call` answers one call the way the environment does (tools off, unusable call,
  or the rules found), :func:`format_rules` renders retrieved rules as the tool's result.

A lookup call is written with :func:`ascl_env.turns.write_call` (``write_call(TOOL_NAME,
{"query": ...})``). This module imports nothing heavy (no retriever, no judge), so harness and
adapter code may import it freely.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ascl_env import turns
from ascl_env.turns import MalformedCall, ToolCall, write_call

if TYPE_CHECKING:
    from ascl_env.retrieval import Hit

__all__ = [
    "ERROR_CHARS",
    "NO_RULES",
    "NO_TOOLS_ERROR",
    "MISSING_QUERY_ERROR",
    "QUERY_DESCRIPTION",
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "RULE_MIN_CHARS",
    "Search",
    "answer_call",
    "error_result",
    "format_rules",
    "malformed_call_error",
    "one_line_call",
    "read_query",
    "tool_docstring",
    "tool_schema",
    "unknown_tool_error",
]

TOOL_NAME = "lookup_safety_rules"
"""The tool's name, as offered in the schema and expected in calls."""

TOOL_DESCRIPTION = (
    "Search the safety rule base. Returns the most relevant rules: what to refuse, "
    "what stays allowed, and how to answer safely."
)
"""What the tool does, as the model is told (the schema's and every adapter's description)."""

QUERY_DESCRIPTION = "What the request is about, in a few words."
"""The description of the tool's one argument, ``query``."""

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
            "description": TOOL_DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": QUERY_DESCRIPTION}},
                "required": ["query"],
            },
        },
    }


def tool_docstring() -> str:
    """The tool's description as a Google-style docstring, for frameworks that build a tool's
    schema from a method (TRL's ``environment_factory``, verifiers' ``@vf.tool``): a method
    ``lookup_safety_rules(self, query: str) -> str`` with this docstring renders as
    :func:`tool_schema`."""
    return f"{TOOL_DESCRIPTION}\n\nArgs:\n    query: {QUERY_DESCRIPTION}\n"


def malformed_call_error(error: str) -> str:
    """The tool-error text for a ``<tool_call>`` block that could not be read."""
    return f"could not parse the tool call: {error}. Write {one_line_call('...')}"


def one_line_call(query: str) -> str:
    """A lookup call written on one line, as prompts and error texts show it.

    >>> one_line_call("pipe bomb")
    '<tool_call>{"name": "lookup_safety_rules", "arguments": {"query": "pipe bomb"}}</tool_call>'
    """
    return write_call(TOOL_NAME, {"query": query}).replace("\n", "")


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
    if isinstance(call, MalformedCall):
        return None, malformed_call_error(call.error)
    if call.name != TOOL_NAME:
        return None, unknown_tool_error(call.name)
    query = call.arguments.get("query") if isinstance(call.arguments, Mapping) else None
    if not isinstance(query, str) or not query.strip():
        return None, MISSING_QUERY_ERROR
    return query, None


Search = Callable[[str], Sequence["Hit"]]
"""The rules for a query, best first (e.g. ``lambda q: retriever.search(q, top_k)``)."""


def answer_call(
    call: ToolCall | MalformedCall, search: Search | None, max_chars: int
) -> tuple[str, list[str], str | None]:
    """Answer one call as the environment does: ``(result, rule ids shown, error)``.

    ``search`` is ``None`` when the episode offers no tools (``rules_mode`` other than
    ``"tool"``): every call is then an error. An unusable call (malformed, another tool, no
    query) is an error too. For an error, ``error`` is its text and ``result`` the
    ``"Error: ..."`` message the model sees (:func:`error_result`); otherwise ``result`` is the
    rules found, rendered by :func:`format_rules` within ``max_chars``, and ``error`` is ``None``.

    >>> answer_call(ToolCall(TOOL_NAME, {"query": "x"}), None, 2000)[0]  # no tools offered
    'Error: no tools are available in this episode; reply with your final answer'
    >>> answer_call(ToolCall(TOOL_NAME, {"query": "x"}), lambda query: [], 2000)
    ('No safety rules matched.', [], None)
    """
    if search is None:
        return error_result(NO_TOOLS_ERROR), [], NO_TOOLS_ERROR
    query, error = read_query(call)
    if error is not None:
        return error_result(error), [], error
    rules, shown = format_rules(search(query), max_chars)
    return rules, shown, None


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


_MOVED = {"split_think": "split_think", "hermes_call": "write_call"}


def __getattr__(name: str) -> Any:
    """Names that moved to :mod:`ascl_env.turns`, kept for callers outside this project
    (deprecated; the package itself uses the new home)."""
    if name == "format_tool_call":
        warnings.warn(
            "ascl_env.lookup.format_tool_call is deprecated; use "
            "ascl_env.turns.write_call(TOOL_NAME, {'query': query})",
            DeprecationWarning,
            stacklevel=2,
        )
        return _format_tool_call
    if name in _MOVED:
        warnings.warn(
            f"ascl_env.lookup.{name} is deprecated; use ascl_env.turns.{_MOVED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(turns, _MOVED[name])
    raise AttributeError(f"module 'ascl_env.lookup' has no attribute {name!r}")


def _format_tool_call(query: str) -> str:
    return write_call(TOOL_NAME, {"query": query})
