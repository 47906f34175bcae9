"""Hermes tool-call parsing on realistic model output (ascl_env.turns)."""

from __future__ import annotations

import pytest

from ascl_env.turns import MalformedCall, ToolCall, parse_action, read_turn

LOOKUP = '{"name": "lookup_safety_rules", "arguments": {"query": "pipe bomb"}}'
CALL = ToolCall(name="lookup_safety_rules", arguments={"query": "pipe bomb"})


def test_plain_answer_has_no_calls_and_keeps_text():
    parsed = parse_action("  The capital of France is Paris.\n")
    assert parsed.calls == ()
    assert parsed.content == "The capital of France is Paris."
    assert parsed.repairs == () and parsed.ignored == ()


def test_qwen3_style_think_then_call():
    text = (
        "<think>\nThe user asks about explosives. I should check the rules first.\n</think>\n\n"
        f"<tool_call>\n{LOOKUP}\n</tool_call>"
    )
    parsed = parse_action(text)
    assert parsed.calls == (CALL,)
    assert parsed.content == ""
    assert parsed.repairs == () and parsed.ignored == ()


def test_call_inside_think_is_not_executed_and_is_reported():
    text = f"<think>maybe <tool_call>{LOOKUP}</tool_call> no, it is fine</think>Paris."
    parsed = parse_action(text)
    assert parsed.calls == ()
    assert parsed.content == "Paris."
    assert parsed.ignored == ("1 <tool_call> block(s) inside <think> not executed",)


def test_template_opened_think_block():
    # Qwen3-thinking templates put "<think>" in the prompt: the output starts inside the block.
    text = f"reasoning with a <tool_call>{LOOKUP}</tool_call> idea</think>\n\nFinal answer."
    parsed = parse_action(text)
    assert parsed.calls == ()
    assert parsed.content == "Final answer."


def test_unclosed_think_swallows_the_rest():
    parsed = parse_action("Hi.<think>still thinking when max_tokens hit")
    assert parsed.content == "Hi."
    assert "unclosed <think>" in parsed.ignored[0]


def test_thinking_tag_variant_and_case_insensitive_tags():
    parsed = parse_action(f"<THINKING>x</THINKING><Tool_Call>{LOOKUP}</TOOL_CALL>")
    assert parsed.calls == (CALL,)


def test_code_fence_inside_tags():
    parsed = parse_action(f"<tool_call>\n```json\n{LOOKUP}\n```\n</tool_call>")
    assert parsed.calls == (CALL,)
    assert parsed.repairs == ("code fence inside <tool_call> removed",)


def test_single_quoted_pseudo_json():
    parsed = parse_action(
        "<tool_call>{'name': 'lookup_safety_rules', 'arguments': {'query': 'pipe bomb'}}"
        "</tool_call>"
    )
    assert parsed.calls == (CALL,)
    assert parsed.repairs == ("single-quoted pseudo-JSON accepted",)


def test_trailing_text_inside_and_outside_tags():
    parsed = parse_action(f"Let me check.\n<tool_call>{LOOKUP} thanks</tool_call>\nOne moment.")
    assert parsed.calls == (CALL,)
    assert parsed.content == "Let me check.\n\nOne moment."
    assert parsed.repairs == ("text after the JSON object ignored",)


def test_missing_closing_tag_at_end():
    parsed = parse_action(f"<tool_call>\n{LOOKUP}\n")
    assert parsed.calls == (CALL,)
    assert parsed.repairs == ("missing </tool_call> at the end of the text",)


def test_several_calls_keep_order_and_a_missing_close_between_them():
    second = LOOKUP.replace("pipe bomb", "malware")
    parsed = parse_action(f"<tool_call>{LOOKUP}<tool_call>{second}</tool_call>")
    assert [c.arguments["query"] for c in parsed.calls] == ["pipe bomb", "malware"]
    assert parsed.repairs == ("missing </tool_call> before the next <tool_call>",)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"name": "lookup_safety_rules", "arguments": {"query": "x"', "invalid JSON"),
        ("lookup_safety_rules(query='x')", "no JSON object found"),
        ('["lookup_safety_rules"]', "no JSON object found"),
        ('{"arguments": {"query": "x"}}', "missing or empty 'name'"),
        (
            '{"name": "lookup_safety_rules", "arguments": ["x"]}',
            "'arguments' must be a JSON object",
        ),
        ('{"name": "lookup_safety_rules", "arguments": "not json"}', "not a JSON object"),
        ('{"a":' * 50_000, "nested too deeply"),
        # json raises a plain ValueError for integers over Python's 4300-digit limit
        ('{"name": "lookup_safety_rules", "arguments": {"n": 1' + "1" * 5000 + "}}", "digits"),
        (
            '{"name": "lookup_safety_rules", "arguments": "{\\"n\\": 1' + "1" * 5000 + '}"}',
            "not a JSON object",
        ),
    ],
)
def test_broken_calls_become_malformed_with_a_reason(body, error):
    parsed = parse_action(f"<tool_call>{body}</tool_call>")
    assert len(parsed.calls) == 1
    call = parsed.calls[0]
    assert isinstance(call, MalformedCall)
    assert error in call.error
    assert len(call.snippet) <= 201


def test_openai_variants_are_accepted_and_reported():
    text = (
        '<tool_call>{"type": "function", "function": {"name": "lookup_safety_rules", '
        '"arguments": "{\\"query\\": \\"pipe bomb\\"}"}}</tool_call>'
        '<tool_call>{"name": "lookup_safety_rules", "parameters": {"query": "pipe bomb"}}'
        "</tool_call>"
    )
    parsed = parse_action(text)
    assert parsed.calls == (CALL, CALL)
    assert parsed.repairs == (
        'OpenAI {"function": {...}} wrapper unwrapped',
        "'arguments' given as a JSON string",
        "'parameters' read as 'arguments'",
    )


def test_wrong_tool_name_is_parsed_as_is():
    # The parser reports what was asked; the environment rejects unknown tools.
    parsed = parse_action('<tool_call>{"name": "web_search", "arguments": {"q": "x"}}</tool_call>')
    assert parsed.calls == (ToolCall(name="web_search", arguments={"q": "x"}),)


def test_untagged_call_is_not_executed_but_reported():
    parsed = parse_action(f"I will now call the tool: {LOOKUP}")
    assert parsed.calls == ()
    assert parsed.ignored == ("a tool call without <tool_call> tags was not executed",)


def test_stray_closing_tag_is_reported():
    parsed = parse_action(f"{LOOKUP}</tool_call>")
    assert parsed.calls == ()
    assert parsed.ignored[0] == "stray </tool_call> tag ignored"


def test_huge_action_parses_in_one_pass():
    filler = "word " * 200_000
    parsed = parse_action(f"<think>{filler}</think>{filler}<tool_call>{LOOKUP}</tool_call>")
    assert parsed.calls == (CALL,)
    assert len(parsed.content) == len(filler.strip())


def test_no_eval_of_model_text():
    # literal_eval only builds literals: a call expression inside quotes-JSON is just an error.
    parsed = parse_action("<tool_call>{'name': __import__('os').system('echo hi')}</tool_call>")
    assert isinstance(parsed.calls[0], MalformedCall)


TAGGED_CALL = '<tool_call>{"name": "lookup_safety_rules", "arguments": {"query": "q"}}</tool_call>'


@pytest.mark.parametrize(
    ("text", "max_chars", "kind"),
    [
        ("x" * 11, 10, "too_long"),
        ("x" * 10, 10, "answer"),  # exactly max_chars is still read
        (TAGGED_CALL, 1000, "calls"),
        (TAGGED_CALL, len(TAGGED_CALL) - 1, "too_long"),
        ("<think>only reasoning</think>   ", 1000, "empty"),
        ("", 1000, "empty"),
        ("<think>hmm</think>Sure, here is how.", 1000, "answer"),
    ],
)
def test_read_turn_kinds(text, max_chars, kind):
    got, parsed = read_turn(text, max_chars)
    assert got == kind
    assert (parsed is None) == (kind == "too_long")
    if kind == "answer":
        assert parsed.content and not parsed.calls
