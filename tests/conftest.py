"""Fixtures shared by several test modules: benchmark data, a fake OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public benchmark files (XSTest, GSM8K, ...): ``$ASCL_SHARED_DATA``, else ../shared/data.

    Tests that need them are skipped, saying where they looked, when the folder is absent.
    """
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    data = Path(os.environ.get("ASCL_SHARED_DATA", default))
    if not data.is_dir():
        pytest.skip(f"shared data not found under {data} (set ASCL_SHARED_DATA)")
    return data


# --------------------------------------------------------------------------- fake endpoint


@dataclass
class FakeRequest:
    """A request the fake endpoint got; ``hit`` counts requests to the same path (1, 2, …)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    hit: int


Reply = dict | tuple


class FakeOpenAIServer(ThreadingHTTPServer):
    """An OpenAI-compatible endpoint on 127.0.0.1 (real sockets, no mocks of the HTTP client).

    ``POST …/chat/completions`` (any path) calls ``respond(request)``, which returns a JSON body
    (status 200) or ``(status, payload[, content_type])`` with ``payload`` a dict (sent as JSON),
    ``str`` or ``bytes``; the default answers ``"ok"``. ``GET …/models`` lists ``models``.
    ``delay`` seconds pass before each reply; the next ``failures_left`` POSTs get
    ``failure_status`` instead of ``respond``. Every request is kept in ``requests``;
    ``max_in_flight`` is the most POSTs handled at once. ``url`` is ``http://host:port/v1`` and
    ``url_for(prefix)`` is ``http://host:port/PREFIX/v1`` (one behaviour per prefix, say).
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeOpenAIHandler)
        self.respond: Callable[[FakeRequest], Reply] = lambda request: self.completion("ok")
        self.models = ["fake-model"]
        self.requests: list[FakeRequest] = []
        self.delay = 0.0
        self.failures_left = 0
        self.failure_status = 503
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self._hits: dict[str, int] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    def url_for(self, prefix: str) -> str:
        return f"{self.base_url}/{prefix.strip('/')}/v1"

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the POST requests, in arrival order."""
        return [r.body for r in self.requests if r.method == "POST"]

    @staticmethod
    def completion(content: str | None, tool_calls: list[dict] | None = None) -> dict:
        """A ``/chat/completions`` body whose one choice says ``content``."""
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {
            "id": "cmpl-fake",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }

    def handle_error(self, request, client_address):
        pass  # a client that timed out closed its socket: expected in these tests

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> FakeRequest:
        with self.lock:
            self._hits[path] = self._hits.get(path, 0) + 1
            request = FakeRequest(method, path, headers, body, self._hits[path])
            self.requests.append(request)
        return request


class _FakeOpenAIHandler(BaseHTTPRequestHandler):
    server: FakeOpenAIServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
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
                self._send(server.failure_status, {"error": "overloaded"})
                return
            reply = server.respond(request)
            if isinstance(reply, dict):
                self._send(200, reply)
            else:
                self._send(*reply)
        finally:
            with server.lock:
                server.in_flight -= 1


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A fresh :class:`FakeOpenAIServer`, serving in a thread until the test ends."""
    server = FakeOpenAIServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
