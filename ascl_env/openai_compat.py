"""One client for OpenAI-compatible ``/chat/completions`` endpoints (``vllm serve``, hosted APIs).

Classifiers trained on a raw prompt format (WildGuard, HarmBench's Llama-2 classifier) need the
legacy text endpoint instead: :meth:`ChatClient.text_body` builds a ``/completions`` body, and
``complete_many(bodies, endpoint="text")`` sends it under the same policy and deadline.

Used by the LLM judge (and meant for the OpenAI-compatible agent of the harness). Built on
``httpx`` only. One retry policy and one **total deadline per call**:

* Every call (:meth:`ChatClient.complete`, or one batch of :meth:`ChatClient.complete_many`) has a
  wall-clock deadline (``deadline_s``, default 60 s) that covers connecting, sending, waiting,
  reading the reply, every retry and every backoff sleep. Past it the call raises
  :class:`DeadlineExceeded`; a server that trickles its reply one byte at a time cannot hold a
  caller longer. (httpx's own ``timeout`` bounds each socket operation, not a whole request.)
* Retried: connection failures, per-attempt timeouts, broken replies on the wire, and HTTP
  408/409/425/429/500/502/503/504 -- up to ``max_retries`` extra attempts, waiting
  ``min(max_backoff_s, backoff_s * 2**(attempt - 1))`` before attempt ``attempt`` (or the
  server's ``Retry-After`` seconds when it sends them, capped the same way). When the next wait
  would pass the deadline the call gives up at once with the last failure.
* Not retried: other HTTP errors (400, 401, 404, ...) and a 200 reply that is not a chat
  completion; they raise :class:`EndpointError` at once.

An optional circuit breaker (:meth:`ChatClient.stop_after`) stops calling an endpoint after
a number of failed calls in a row (:class:`CircuitOpen`); ``ascl-bench`` sets it on the LLM
judge for the length of a run.

Every error names the URL, the HTTP status when there was one, the attempts made and the time
spent. Requests run on a private asyncio loop in a daemon thread, so a call can be cancelled at the
deadline wherever it is blocked; calls from several threads run concurrently (up to
``concurrency`` connections). The client pickles and deep-copies: only its settings are kept, and
the loop and HTTP client are rebuilt on first use (also after ``os.fork``).

>>> client = ChatClient("http://127.0.0.1:8000/v1", "my-model", deadline_s=30)  # doctest: +SKIP
>>> reply = client.complete([{"role": "user", "content": "Hi"}], max_tokens=16)  # doctest: +SKIP
>>> reply.text, reply.finish_reason, reply.usage.total_tokens  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses that are retried (timeouts, rate limits, transient server errors)."""

_BODY_EXCERPT = 200


class EndpointError(RuntimeError):
    """A chat completion could not be obtained.

    Attributes:
        url: the endpoint that failed.
        status: the last HTTP status received, or ``None`` when no reply arrived.
        attempts: how many requests were sent.
    """

    def __init__(self, message: str, *, url: str, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts


class DeadlineExceeded(EndpointError):
    """The call's total deadline passed (retries and backoff included)."""


class CircuitOpen(EndpointError):
    """Not sent: the client's circuit breaker is open (:meth:`ChatClient.stop_after`)."""


@dataclass(frozen=True)
class Usage:
    """Token counts as the server reported them (``None`` where it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True)
class Choice:
    """One generated message: its text (``""`` when the server sent ``null`` content, e.g. a
    pure tool call), why generation stopped, and the server-parsed tool calls (OpenAI format)."""

    text: str
    finish_reason: str | None
    tool_calls: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ChatCompletion:
    """A parsed chat completion. ``text`` / ``finish_reason`` / ``tool_calls`` are the first
    choice's; ``raw`` is the decoded JSON body."""

    choices: tuple[Choice, ...]
    usage: Usage
    model: str | None
    attempts: int
    seconds: float
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.choices[0].text

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason

    @property
    def tool_calls(self) -> tuple[dict[str, Any], ...]:
        return self.choices[0].tool_calls


def _reply_checker(
    data: Any, url: str, attempts: int, what: str
) -> Callable[[str], EndpointError]:
    """Check that a decoded completion body has a non-empty ``choices`` list; return the
    error maker (``bad(why)``) the parser uses for what it finds wrong in the choices."""

    def bad(why: str) -> EndpointError:
        return EndpointError(
            f"{url}: HTTP 200 but not {what} ({why}): {str(data)[:_BODY_EXCERPT]!r}",
            url=url,
            status=200,
            attempts=attempts,
        )

    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise bad("no 'choices' list")
    if not data["choices"]:
        raise bad("'choices' is empty")
    return bad


def parse_completion(data: Any, url: str, *, attempts: int = 1, seconds: float = 0.0):
    """Turn a decoded ``/chat/completions`` body into a :class:`ChatCompletion`.

    Raises:
        EndpointError: (status 200) when ``choices[i].message`` is missing or malformed.
    """

    bad = _reply_checker(data, url, attempts, "a chat completion")
    choices = []
    for i, choice in enumerate(data["choices"]):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise bad(f"choices[{i}] has no 'message' object")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise bad(f"choices[{i}].message.content is {type(content).__name__}, not text")
        tool_calls = message.get("tool_calls") or []
        if not isinstance(tool_calls, list) or not all(isinstance(c, dict) for c in tool_calls):
            raise bad(f"choices[{i}].message.tool_calls is not a list of objects")
        reason = choice.get("finish_reason")
        choices.append(
            Choice(content or "", reason if isinstance(reason, str) else None, tuple(tool_calls))
        )
    return _completion(data, choices, attempts, seconds)


def _completion(
    data: dict[str, Any], choices: list[Choice], attempts: int, seconds: float
) -> ChatCompletion:
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    def count(key: str) -> int | None:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    model = data.get("model")
    return ChatCompletion(
        choices=tuple(choices),
        usage=Usage(count("prompt_tokens"), count("completion_tokens"), count("total_tokens")),
        model=model if isinstance(model, str) else None,
        attempts=attempts,
        seconds=seconds,
        raw=data,
    )


def parse_text_completion(data: Any, url: str, *, attempts: int = 1, seconds: float = 0.0):
    """Turn a decoded ``/completions`` (text) body into a :class:`ChatCompletion` (its choices'
    ``text``; no tool calls).

    Raises:
        EndpointError: (status 200) when ``choices[i].text`` is missing or not text.
    """

    bad = _reply_checker(data, url, attempts, "a text completion")
    choices = []
    for i, choice in enumerate(data["choices"]):
        text = choice.get("text") if isinstance(choice, dict) else None
        if not isinstance(text, str):
            raise bad(f"choices[{i}] has no 'text' string")
        reason = choice.get("finish_reason")
        choices.append(Choice(text, reason if isinstance(reason, str) else None))
    return _completion(data, choices, attempts, seconds)


def _excerpt(reply: httpx.Response) -> str:
    try:
        return repr(reply.text[:_BODY_EXCERPT])
    except Exception:  # undecodable body
        return repr(reply.content[:_BODY_EXCERPT])


def _retry_after(reply: httpx.Response) -> float | None:
    value = reply.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None  # absent, or an HTTP date: use the backoff schedule
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class _Loop:
    """A private event loop in a daemon thread, stopped when its owner is garbage-collected."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="openai-compat-loop", daemon=True
        )
        self.thread.start()

    def run(self, coro: Any) -> Any:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("ChatClient's blocking calls cannot be made from its own loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    @staticmethod
    def stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: Any) -> None:
        if loop.is_closed():
            return
        if thread.is_alive():
            if client is not None:
                try:
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
                except Exception:  # noqa: S110 - best effort on shutdown
                    pass
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


class ChatClient:
    """A chat-completions client for one model behind one OpenAI-compatible endpoint.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` and
            ``/models`` are appended).
        model: the served model name sent with every request.
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        timeout: seconds for each connect / read / write of one attempt (httpx semantics).
        deadline_s: the default total wall-clock limit of one call, retries and backoff
            included; a call may pass its own ``deadline_s``.
        max_retries: extra attempts after a retryable failure (see the module docstring).
        backoff_s: the first backoff wait; doubled on each retry.
        max_backoff_s: the longest single wait (also caps ``Retry-After``).
        concurrency: the most simultaneous connections (threads calling :meth:`complete`, or
            the requests of one :meth:`complete_many`).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        deadline_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        concurrency: int = 8,
    ) -> None:
        checks = {
            "timeout": (timeout, timeout > 0),
            "deadline_s": (deadline_s, deadline_s > 0 and math.isfinite(deadline_s)),
            "backoff_s": (backoff_s, backoff_s >= 0),
            "max_backoff_s": (max_backoff_s, max_backoff_s >= 0),
        }
        for name, (value, ok) in checks.items():
            if not ok:
                raise ValueError(f"ChatClient {name} must be a positive finite number, got {value}")
        if max_retries < 0:
            raise ValueError(f"ChatClient max_retries must be >= 0, got {max_retries}")
        if concurrency < 1:
            raise ValueError(f"ChatClient concurrency must be >= 1, got {concurrency}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"ChatClient base_url must start with http:// or https://: {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.text_url = self.base_url + "/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = float(timeout)
        self.deadline_s = float(deadline_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.concurrency = int(concurrency)
        self._stop_after: int | None = None
        self._failures = 0
        self._last_failure: EndpointError | None = None
        self._init_runtime()

    # ------------------------------------------------------------------ runtime (not pickled)

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._runtime: tuple[_Loop, httpx.AsyncClient] | None = None
        self._pid = os.getpid()

    def _ensure(self) -> tuple[_Loop, httpx.AsyncClient]:
        with self._lock:
            if self._runtime is None or self._pid != os.getpid():
                # after a fork the parent's loop thread does not exist here: build anew
                self._pid = os.getpid()
                loop = _Loop()
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                limits = httpx.Limits(max_connections=self.concurrency)

                async def build() -> httpx.AsyncClient:
                    return httpx.AsyncClient(
                        timeout=httpx.Timeout(self.timeout), headers=headers, limits=limits
                    )

                client = loop.run(build())
                self._runtime = (loop, client)
                self._finalizer = weakref.finalize(self, _Loop.stop, loop.loop, loop.thread, client)
            return self._runtime

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_runtime", "_pid", "_finalizer", "_last_failure"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._last_failure = None
        self._init_runtime()

    def close(self) -> None:
        """Close the connections and stop the loop thread (a later call starts them again)."""
        with self._lock:
            if self._runtime is not None and self._pid == os.getpid():
                self._finalizer()
            self._runtime = None

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def set_concurrency(self, concurrency: int) -> None:
        """Allow ``concurrency`` simultaneous connections from the next call on."""
        if concurrency < 1:
            raise ValueError(f"ChatClient concurrency must be >= 1, got {concurrency}")
        if concurrency != self.concurrency:
            self.close()  # the connection pool is rebuilt with the new limit on first use
            self.concurrency = int(concurrency)

    def stop_after(self, failures: int | None) -> None:
        """A circuit breaker: once ``failures`` calls in a row have failed (after their
        retries), every later call raises :class:`CircuitOpen` at once, naming the last failure,
        without sending anything. ``None`` (the default) never stops. Setting it resets the
        count, so a new run starts with the endpoint trusted again."""
        if failures is not None and failures < 1:
            raise ValueError(f"stop_after needs failures >= 1 or None, got {failures}")
        with self._lock:
            self._stop_after, self._failures, self._last_failure = failures, 0, None

    def _breaker_check(self) -> None:
        with self._lock:
            limit, failures, last = self._stop_after, self._failures, self._last_failure
        if limit is not None and failures >= limit:
            raise CircuitOpen(
                f"{self.url}: not called, {failures} calls in a row failed (last: {last})",
                url=self.url,
                status=last.status if last else None,
                attempts=0,
            )

    def _breaker_count(self, failure: EndpointError | None) -> None:
        with self._lock:
            self._failures = 0 if failure is None else self._failures + 1
            self._last_failure = failure or self._last_failure

    # ------------------------------------------------------------------ public calls

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        n: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> ChatCompletion:
        """One chat completion. Parameters left ``None`` are not sent (the server default).

        ``extra_body`` is merged into the JSON body last (e.g. ``{"top_p": 0.9}``,
        ``{"chat_template_kwargs": {...}}`` for vLLM). ``deadline_s`` overrides the client's.

        Raises:
            DeadlineExceeded: the deadline passed.
            EndpointError: the retries were spent, a non-retryable HTTP error, or a reply that
                is not a chat completion.
        """
        body = self.request_body(
            messages,
            tools=tools,
            n=n,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            extra_body=extra_body,
        )
        return self.complete_many([body], deadline_s=deadline_s)[0]

    def complete_many(
        self,
        bodies: Sequence[Mapping[str, Any]],
        *,
        deadline_s: float | None = None,
        endpoint: str = "chat",
    ) -> list[ChatCompletion]:
        """Send several request bodies (from :meth:`request_body`, or :meth:`text_body` with
        ``endpoint="text"``) concurrently under ONE deadline; the results are in order. The first
        failure cancels the others and is raised.
        """
        if endpoint not in ("chat", "text"):
            raise ValueError(f"endpoint must be 'chat' or 'text', got {endpoint!r}")
        deadline = self._deadline(deadline_s)
        self._breaker_check()
        loop, client = self._ensure()
        try:
            replies = loop.run(self._gather(client, bodies, deadline, endpoint == "text"))
        except EndpointError as exc:
            self._breaker_count(exc)
            raise
        self._breaker_count(None)
        return replies

    def text_body(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A ``/completions`` body: ``prompt`` is sent as it is, no chat template applied."""
        body: dict[str, Any] = {"model": self.model, "prompt": prompt}
        optional = {"temperature": temperature, "max_tokens": max_tokens}
        body.update({k: v for k, v in optional.items() if v is not None})
        body.update(extra_body or {})
        return body

    def request_body(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        n: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON body :meth:`complete` sends (for :meth:`complete_many`)."""
        if not messages:
            raise ValueError("a chat completion needs at least one message")
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        optional = {
            "tools": list(tools) if tools else None,
            "n": n,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        body.update(extra_body or {})
        return body

    def models(self, *, deadline_s: float | None = None) -> list[str]:
        """The model ids the endpoint serves (``GET /models``), under the same policy."""
        deadline = self._deadline(deadline_s)
        loop, client = self._ensure()
        url = self.base_url + "/models"
        data = loop.run(self._with_deadline(self._send(client, "GET", url, None), url, deadline))
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise EndpointError(
                f"{url}: HTTP 200 but no 'data' list: {str(data)[:_BODY_EXCERPT]!r}",
                url=url,
                status=200,
                attempts=1,
            )
        return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]

    # ------------------------------------------------------------------ internals

    def _deadline(self, deadline_s: float | None) -> tuple[float, float]:
        """(monotonic end time, seconds) of a call's deadline."""
        seconds = self.deadline_s if deadline_s is None else deadline_s
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"deadline_s must be a positive finite number, got {seconds}")
        return time.monotonic() + seconds, seconds

    async def _gather(
        self,
        client: httpx.AsyncClient,
        bodies: Sequence[Mapping[str, Any]],
        deadline: tuple[float, float],
        text: bool = False,
    ) -> list[ChatCompletion]:
        url = self.text_url if text else self.url
        parse = parse_text_completion if text else parse_completion

        async def one(body: Mapping[str, Any]) -> ChatCompletion:
            began = time.monotonic()
            data, attempts = await self._with_deadline(
                self._send(client, "POST", url, body, count=True), url, deadline
            )
            return parse(data, url, attempts=attempts, seconds=time.monotonic() - began)

        tasks = [asyncio.ensure_future(one(b)) for b in bodies]
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:  # a failure: the rest is not needed
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in tasks:  # the first failure in request order
            if task in done and task.exception() is not None:
                raise task.exception()
        return [task.result() for task in tasks]

    @staticmethod
    async def _with_deadline(factory: Any, url: str, deadline: tuple[float, float]) -> Any:
        end, seconds = deadline
        progress = _Progress(deadline=end)
        try:
            return await asyncio.wait_for(factory(progress), max(end - time.monotonic(), 0))
        except asyncio.TimeoutError:
            raise DeadlineExceeded(
                f"{url}: no reply within the {seconds:.3g} s deadline ({progress.describe()})",
                url=url,
                status=progress.status,
                attempts=progress.attempts,
            ) from None

    def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        *,
        count: bool = False,
    ):
        """A coroutine factory (called with a :class:`_Progress`) running the retry loop."""

        async def run(progress: _Progress) -> Any:
            began = time.monotonic()
            failure = ""
            for attempt in range(self.max_retries + 1):
                progress.attempts = attempt + 1
                wait = None
                try:
                    reply = await client.request(method, url, json=body)
                except httpx.TimeoutException as exc:
                    failure = f"timed out ({type(exc).__name__})"
                    progress.failure, progress.status = failure, None
                except httpx.TransportError as exc:
                    failure = f"connection failed ({type(exc).__name__}: {exc})"
                    progress.failure, progress.status = failure, None
                else:
                    progress.status = reply.status_code
                    if reply.status_code in RETRY_STATUS:
                        failure = f"HTTP {reply.status_code}: {_excerpt(reply)}"
                        progress.failure = failure
                        wait = _retry_after(reply)
                    elif reply.is_error:
                        raise EndpointError(
                            f"{url}: HTTP {reply.status_code} (not retried): {_excerpt(reply)}",
                            url=url,
                            status=reply.status_code,
                            attempts=attempt + 1,
                        )
                    else:
                        try:
                            data = reply.json()
                        except ValueError:
                            raise EndpointError(
                                f"{url}: HTTP {reply.status_code} but the body is not JSON: "
                                f"{_excerpt(reply)}",
                                url=url,
                                status=reply.status_code,
                                attempts=attempt + 1,
                            ) from None
                        return (data, attempt + 1) if count else data
                if attempt == self.max_retries:
                    break
                delay = min(
                    self._backoff(attempt + 1) if wait is None else wait, self.max_backoff_s
                )
                if time.monotonic() + delay >= progress.deadline:
                    raise DeadlineExceeded(
                        f"{url}: {failure}; gave up after {attempt + 1} attempt(s) in "
                        f"{time.monotonic() - began:.3g} s, as the next retry would pass the "
                        "deadline",
                        url=url,
                        status=progress.status,
                        attempts=attempt + 1,
                    )
                await asyncio.sleep(delay)
            raise EndpointError(
                f"{url}: {failure} after {self.max_retries + 1} attempt(s) in "
                f"{time.monotonic() - began:.3g} s",
                url=url,
                status=progress.status,
                attempts=self.max_retries + 1,
            )

        return run

    def _backoff(self, attempt: int) -> float:
        return self.backoff_s * 2 ** (attempt - 1)


@dataclass
class _Progress:
    """What a call had done when its deadline passed (for the error message)."""

    attempts: int = 0
    status: int | None = None
    failure: str = ""
    deadline: float = math.inf

    def describe(self) -> str:
        if not self.attempts:
            return "no request sent"
        last = f"; last failure: {self.failure}" if self.failure else ""
        return f"{self.attempts} attempt(s){last}"
