"""The tests' one fake OpenAI-compatible endpoint: a real HTTP server on 127.0.0.1, no mocks.

Tests take the ``openai_server`` fixture (conftest.py), a fresh :class:`FakeOpenAIServer` serving
in a thread until the test ends, and set what it answers::

    def test_judge(openai_server):
        openai_server.respond = lambda request: completion("VERDICT: SAFE")
        judge = LLMJudge(openai_server.url, "guard")  # http://127.0.0.1:PORT/v1
        ...
        assert openai_server.bodies[0]["model"] == "guard"

``POST`` to any path calls ``respond(request)`` with a :class:`FakeRequest`; it returns a JSON
body (status 200) or ``(status, payload)`` / ``(status, payload, headers)``, ``payload`` a dict
(sent as JSON), ``str`` or ``bytes``, ``headers`` a dict (``Content-Type`` defaults to JSON).
The default answers ``completion("ok")``. ``GET …/models`` lists ``models``; other GETs get 404.

Knobs: ``delay`` seconds pass before each POST reply; the next ``failures_left`` POSTs get
``failure_status`` instead; ``trickle = True`` sends each reply, status line included, one byte
per ``trickle_s`` seconds. Records: ``requests`` (every request; ``hit`` counts those to the same
path; clear it to start afresh), ``bodies`` (the POST bodies), ``hits(prefix)``, ``max_in_flight``
(most POSTs at once).
``url_for(prefix)`` is ``http://127.0.0.1:PORT/PREFIX/v1``: one behaviour per prefix, which
``respond`` reads back as ``request.prefix``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = dict | tuple


def completion(
    content: str | None, finish_reason: str = "stop", tool_calls: list[dict] | None = None
) -> dict:
    """A ``/chat/completions`` body with one choice saying ``content`` (and usage 11 + 7)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "cmpl-fake",
        "object": "chat.completion",
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


@dataclass
class FakeRequest:
    """A request the fake endpoint got; ``hit`` counts requests to the same path (1, 2, …)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON (the raw bytes if not JSON); None for GET
    hit: int

    @property
    def prefix(self) -> str:
        """The first path segment: ``"echo"`` for ``/echo/v1/chat/completions``."""
        return self.path.strip("/").split("/")[0]


class FakeOpenAIServer(ThreadingHTTPServer):
    """An OpenAI-compatible endpoint on 127.0.0.1; see the module docstring."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops connects beyond it: clients wait 1 s

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond: Callable[[FakeRequest], Reply] = lambda request: completion("ok")
        self.models = ["fake-model"]
        self.requests: list[FakeRequest] = []
        self.delay = 0.0
        self.failures_left = 0
        self.failure_status = 503
        self.trickle = False
        self.trickle_s = 1.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def url_for(self, prefix: str) -> str:
        return self.url.replace("/v1", f"/{prefix}/v1")

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the POST requests, in arrival order."""
        return [r.body for r in self.requests if r.method == "POST"]

    def hits(self, prefix: str) -> int:
        """How many POSTs went to ``url_for(prefix)``."""
        return sum(r.method == "POST" and r.prefix == prefix for r in self.requests)

    def handle_error(self, request, client_address):
        pass  # a client that timed out closed its socket: expected in these tests

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> FakeRequest:
        with self.lock:
            hit = 1 + sum(r.path == path for r in self.requests)
            request = FakeRequest(method, path, headers, body, hit)
            self.requests.append(request)
        return request


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAIServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        head = {"Content-Type": "application/json", **(headers or {})}
        head["Content-Length"] = str(len(payload))
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('X',))[0]}"]
        lines += [f"{k}: {v}" for k, v in head.items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        try:
            if self.server.trickle:
                for i in range(len(raw)):
                    self.wfile.write(raw[i : i + 1])
                    self.wfile.flush()
                    time.sleep(self.server.trickle_s)
            else:
                self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (timeout tests)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.server
        server._record("GET", self.path, dict(self.headers), None)
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": m} for m in server.models]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        server = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        request = server._record("POST", self.path, dict(self.headers), body)
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            fail = server.failures_left > 0
            server.failures_left -= 1 if fail else 0
        try:
            time.sleep(server.delay)
            if fail:
                reply = server.failure_status, {"error": "overloaded"}
            else:
                reply = server.respond(request)
            self._send(*((200, reply) if isinstance(reply, dict) else reply))
        finally:
            with server.lock:
                server.in_flight -= 1
