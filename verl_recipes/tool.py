"""``lookup_safety_rules`` as a verl ``BaseTool``, for verl's stock ``tool_agent`` loop.

It runs the env's own lookup: the process-wide BM25 retriever
(:func:`ascl_env.retrieval.shared_retriever`) and the env's observation formatter
(:func:`ascl_env.env.format_rules`), so a lookup returns the same text as ``ASCLEnv.step``.
The tool config takes the lookup fields of :class:`ascl_env.config.ASCLConfig`
(``rule_base_path``, ``retriever_backend``, ``top_k``, ``max_rule_chars``; see
``config/tool_config.yaml``).

verl creates and releases a tool instance around every call, so per-episode counts live in
``agent_data.extra_fields`` (``ascl_tool_calls``, ``ascl_format_errors``,
``ascl_retrieved_rule_ids``); verl passes them to the reward function in ``extra_info``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from ascl_env.config import ASCLConfig
from ascl_env.env import LOOKUP_TOOL_NAME, MISSING_QUERY_ERROR, format_rules, lookup_tool_schema
from ascl_env.retrieval import BM25Retriever, shared_retriever

_LOOKUP_FIELDS = ("rule_base_path", "retriever_backend", "top_k", "max_rule_chars")
# The env's answer to a call without a usable query (ascl_env.env.ASCLEnv._run_call).
MISSING_QUERY = f"Error: {MISSING_QUERY_ERROR}"


class SafetyRuleLookupTool(BaseTool):
    """BM25 lookup over the safety rule base (verl ``BaseTool``)."""

    def __init__(self, config: dict[str, Any], tool_schema: OpenAIFunctionToolSchema | None):
        super().__init__(config, tool_schema)
        unknown = set(config) - {"type", *_LOOKUP_FIELDS}
        if unknown:
            raise ValueError(
                f"{LOOKUP_TOOL_NAME} tool config: unknown field(s) {sorted(unknown)}; "
                f"allowed: {list(_LOOKUP_FIELDS)}"
            )
        self.settings = ASCLConfig(**{k: config[k] for k in _LOOKUP_FIELDS if k in config})
        self._retriever: BM25Retriever | None = None

    def get_openai_tool_schema(self) -> OpenAIFunctionToolSchema:
        return OpenAIFunctionToolSchema.model_validate(lookup_tool_schema())

    def retriever(self) -> BM25Retriever:
        # Built on the first call: verl also instantiates tools in the driver, which never calls.
        if self._retriever is None:
            self._retriever = shared_retriever(
                self.settings.rule_base_path, self.settings.retriever_backend
            )
        return self._retriever

    def lookup(self, query: str) -> tuple[str, list[str]]:
        """The observation text and shown rule ids, exactly as the env returns them."""
        hits = self.retriever().search(query, self.settings.top_k)
        return format_rules(hits, self.settings.max_rule_chars)

    async def execute(
        self, instance_id: str, parameters: Any, **kwargs: Any
    ) -> tuple[ToolResponse, float, dict[str, Any]]:
        # verl passes whatever JSON the model wrote as the arguments, not only objects.
        query = parameters.get("query") if isinstance(parameters, dict) else None
        fields = getattr(kwargs.get("agent_data"), "extra_fields", {})
        if not isinstance(query, str) or not query.strip():
            # The env counts this as a format error (and, for a usable object without a query,
            # answers with the same text).
            fields["ascl_format_errors"] = fields.get("ascl_format_errors", 0) + 1
            return ToolResponse(text=MISSING_QUERY), 0.0, {"rule_ids": []}
        text, shown = await asyncio.to_thread(self.lookup, query)
        fields["ascl_tool_calls"] = fields.get("ascl_tool_calls", 0) + 1
        retrieved = fields.setdefault("ascl_retrieved_rule_ids", [])
        retrieved.extend(r for r in shown if r not in retrieved)
        return ToolResponse(text=text), 0.0, {"rule_ids": shown}
