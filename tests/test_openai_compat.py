"""The shared OpenAI-compatible client against a real local HTTP server."""

from __future__ import annotations

import copy
import json
import pickle
import socket
import threading
import time

import pytest
from fake_openai import FakeOpenAIServer, FakeRequest, completion

from ascl_env.openai_compat import (
    ChatClient,
    ChatCompletion,
    DeadlineExceeded,
    EndpointError,
    parse_completion,
)

MESSAGES = [{"role": "user", "content": "Hi"}]


def respond(request: FakeRequest) -> dict | tuple:
    """Replies by scenario: the first path segment before /v1 picks it."""
    scenario, body = request.prefix, request.body
    if scenario == "echo":
        return completion(json.dumps(body, sort_keys=True))
    if scenario == "tools":
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        return completion(None, "tool_calls", [call])
    if scenario == "flaky":
        return (503, b"busy") if request.hit % 2 else completion("ok")
    if scenario == "always-500":
        return 500, b'{"error": "boom"}'
    if scenario == "retry-after":
        return 429, b"slow down", {"Retry-After": "30"}
    if scenario == "bad-request":
        return 400, b'{"error": "bad"}'
    if scenario == "not-json":
        return 200, b"<html>"
    if scenario == "no-choices":
        return {"error": "x"}
    if scenario == "slow":
        time.sleep(float(body["messages"][0]["content"]))
        return completion("late")
    return 404, b"{}"


@pytest.fixture
def server(openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    openai_server.respond = respond
    openai_server.models = ["fake", "other"]
    return openai_server


def client(server: FakeOpenAIServer, scenario: str, **kwargs) -> ChatClient:
    kwargs.setdefault("backoff_s", 0.01)
    return ChatClient(server.url_for(scenario), "fake", **kwargs)


def test_complete_sends_the_parameters_and_parses_the_reply(server):
    with client(server, "echo", api_key="sk-1") as c:
        reply = c.complete(
            MESSAGES,
            tools=[{"type": "function", "function": {"name": "f"}}],
            n=1,
            temperature=0.5,
            max_tokens=7,
            seed=3,
            extra_body={"top_p": 0.9},
        )
    sent = json.loads(reply.text)
    assert sent == {
        "model": "fake",
        "messages": MESSAGES,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "n": 1,
        "temperature": 0.5,
        "max_tokens": 7,
        "seed": 3,
        "top_p": 0.9,
    }
    assert server.requests[-1].headers["Authorization"] == "Bearer sk-1"
    assert reply.finish_reason == "stop" and reply.model == "fake" and reply.attempts == 1
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    assert reply.usage.total_tokens == 18


def test_unset_parameters_are_not_sent(server):
    with client(server, "echo") as c:
        sent = json.loads(c.complete(MESSAGES).text)
    assert sent == {"model": "fake", "messages": MESSAGES}


def test_tool_calls_and_null_content(server):
    with client(server, "tools") as c:
        reply = c.complete(MESSAGES)
    assert reply.text == "" and reply.finish_reason == "tool_calls"
    assert reply.tool_calls[0]["function"]["name"] == "f"


def test_retries_transient_errors(server):
    with client(server, "flaky", max_retries=1) as c:
        assert c.complete(MESSAGES).text == "ok"
    assert server.hits("flaky") == 2


def test_retries_spent(server):
    with client(server, "always-500", max_retries=2) as c:
        with pytest.raises(EndpointError, match=r"always-500/v1/chat/completions: HTTP 500.*3 att"):
            c.complete(MESSAGES)
    assert server.hits("always-500") == 3


@pytest.mark.parametrize("scenario", ["bad-request", "not-json", "no-choices"])
def test_deterministic_failures_are_not_retried(server, scenario):
    with client(server, scenario, max_retries=3) as c, pytest.raises(EndpointError) as info:
        c.complete(MESSAGES)
    assert server.hits(scenario) == 1
    assert info.value.status == (400 if scenario == "bad-request" else 200)
    assert info.value.attempts == 1 and scenario in info.value.url


def test_a_retry_that_would_pass_the_deadline_is_not_waited_for(server):
    # Retry-After 30 s (capped at max_backoff_s=8) cannot fit a 1 s deadline: fail at once.
    began = time.monotonic()
    with client(server, "retry-after", max_retries=5, deadline_s=1) as c:
        with pytest.raises(DeadlineExceeded, match="HTTP 429.*next retry would pass") as info:
            c.complete(MESSAGES)
    assert time.monotonic() - began < 0.9 and info.value.status == 429


def test_deadline_covers_a_slow_reply_and_its_retries(server):
    began = time.monotonic()
    with client(server, "slow", timeout=0.3, max_retries=10, deadline_s=1.0) as c:
        with pytest.raises(DeadlineExceeded, match="deadline") as info:
            c.complete([{"role": "user", "content": "5"}])
    elapsed = time.monotonic() - began
    assert 0.9 < elapsed < 2.0, elapsed  # not 11 attempts x 0.3 s, nor the 5 s reply
    assert info.value.attempts >= 2  # each attempt timed out after 0.3 s and was retried


def test_deadline_bounds_a_trickling_server(openai_server):
    """A reply sent one byte per second (status line included) cannot hold a call."""
    openai_server.respond = lambda request: completion("VERDICT: SAFE")
    openai_server.trickle = True
    began = time.monotonic()
    with ChatClient(openai_server.url, "fake", timeout=5, deadline_s=2.5) as c:
        with pytest.raises(DeadlineExceeded, match="2.5 s deadline"):
            c.complete(MESSAGES)
    elapsed = time.monotonic() - began
    assert 2.4 < elapsed < 3.5, elapsed


def test_per_call_deadline_overrides_the_default(server):
    with client(server, "slow", deadline_s=30) as c, pytest.raises(DeadlineExceeded):
        c.complete([{"role": "user", "content": "3"}], deadline_s=0.3)


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ChatClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01) as c:
        with pytest.raises(EndpointError, match="connection failed.*2 attempt") as info:
            c.complete(MESSAGES)
    assert info.value.status is None and info.value.attempts == 2


def test_complete_many_runs_concurrently_in_order(server):
    with client(server, "slow", concurrency=4) as c:
        bodies = [c.request_body([{"role": "user", "content": "0.5"}], seed=i) for i in range(4)]
        began = time.monotonic()
        replies = c.complete_many(bodies)
    assert time.monotonic() - began < 1.5  # 4 x 0.5 s in parallel
    assert [r.text for r in replies] == ["late"] * 4


def test_threads_share_one_client(server):
    out: list[str] = []
    with client(server, "echo") as c:
        threads = [
            threading.Thread(target=lambda i=i: out.append(c.complete(MESSAGES, seed=i).text))
            for i in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(json.loads(t)["seed"] for t in out) == list(range(6))


def test_models(server):
    with client(server, "echo") as c:
        assert c.models() == ["fake", "other"]


def test_pickle_and_deepcopy_rebuild_the_connection(server):
    c = client(server, "echo", deadline_s=7)
    c.complete(MESSAGES)  # the loop and HTTP client exist now
    for clone in (pickle.loads(pickle.dumps(c)), copy.deepcopy(c)):
        assert (clone.url, clone.deadline_s, clone.max_retries) == (c.url, 7.0, 2)
        assert json.loads(clone.complete(MESSAGES, seed=5).text)["seed"] == 5
        clone.close()
    c.close()
    assert json.loads(c.complete(MESSAGES, seed=6).text)["seed"] == 6  # usable after close
    c.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"deadline_s": float("inf")}, "deadline_s"),
        ({"deadline_s": -1}, "deadline_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_bad_settings(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ChatClient("http://127.0.0.1:1/v1", "m", **kwargs)
    with pytest.raises(ValueError, match="http"):
        ChatClient("127.0.0.1:8000/v1", "m")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([], "no 'choices'"),
        ({"choices": []}, "empty"),
        ({"choices": [{"text": "x"}]}, "no 'message'"),
        ({"choices": [{"message": {"content": 3}}]}, "int, not text"),
        ({"choices": [{"message": {"content": "x", "tool_calls": "f"}}]}, "tool_calls"),
    ],
)
def test_parse_completion_names_the_problem(data, why):
    with pytest.raises(EndpointError, match=why):
        parse_completion(data, "http://x/v1/chat/completions")


def test_parse_completion_tolerates_missing_usage_and_reason():
    reply = parse_completion({"choices": [{"message": {"content": "a"}}]}, "u")
    assert isinstance(reply, ChatCompletion)
    assert reply.text == "a" and reply.finish_reason is None and reply.usage.total_tokens is None
