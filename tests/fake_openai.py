"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (imported by test modules).

``FakeOpenAI(handler)`` serves ``POST .../chat/completions`` and ``GET .../models``; ``handler``
gets the request path and JSON body and returns ``(status, body bytes, headers)``. Setting
``trickle=True`` sends the whole reply, status line included, one byte per ``trickle_s`` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, bytes, dict[str, str]]


def completion(content: str | None, finish_reason: str = "stop", **extra: Any) -> bytes:
    """A chat-completion body with one choice."""
    return json.dumps(
        {
            "id": "cmpl-test",
            "object": "chat.completion",
            "model": "fake",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            **extra,
        }
    ).encode()


class FakeOpenAI:
    def __init__(self, handler: Callable[[str, dict], Reply], *, trickle_s: float = 1.0) -> None:
        self.handler = handler
        self.trickle = False
        self.trickle_s = trickle_s
        self.requests: list[tuple[str, dict[str, str], dict]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(payload)}"]
                head += ["Content-Type: application/json"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
                try:
                    if fake.trickle:
                        for i in range(len(raw)):
                            self.wfile.write(raw[i : i + 1])
                            self.wfile.flush()
                            time.sleep(fake.trickle_s)
                    else:
                        self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append((self.path, dict(self.headers), body))
                self._reply(*fake.handler(self.path, body))

            def do_GET(self) -> None:  # noqa: N802
                with fake.lock:
                    fake.requests.append((self.path, dict(self.headers), {}))
                self._reply(*fake.handler(self.path, {}))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
