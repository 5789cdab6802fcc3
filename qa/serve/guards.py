"""Guards for a server left running, at the ASGI level: a gate around model calls bounded by
expected wait, a body size limit, the admin check with a throttle on wrong tokens, and an
access log line for every request. (Connection-level guards, before a request exists, are in
qa/serve/server.py.)"""

from __future__ import annotations

import functools
import hmac
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")
access_log = logging.getLogger("qa.access")

CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADMIN_CHECKED = "qa.admin_checked"  # key in the request's scope["state"]: AdminOnly let it through
# Scope key: (status or None, outcome in words) for the access log, set by whoever knows better
# than the status alone: the connection layer when it cut a request off, the busy handler.
OUTCOME = "qa.outcome"
SERVICE_TIMES_KEPT = 20  # the service time is taken from the last this many questions
# ... as their 90th percentile, not their median: a question admitted because the work ahead of it
# should take at most max_wait_s must rarely wait longer (measured: with the median, 50 clients'
# answered p95 overshot the limit by 1.7 s on 2 cores, as half the questions ahead ran longer).
SERVICE_QUANTILE = 0.9
# Questions still waited longer than that foretold: between one question leaving the models and
# the next entering, the event loop, busy with HTTP and refusals on 2 shared cores, hands over
# late (measured: one answer every 613 ms while a question held the models 552 ms; answered p95
# 0.8% over the limit). So the foretold wait is scaled by how much longer the last few admitted
# questions waited than foretold (that ratio's 90th percentile, never below 1).
WAITS_KEPT = 20


class Busy(Exception):
    """Too many requests are waiting for the models, or a question would wait too long."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ClientGone(Exception):
    """The client disconnected while its question waited; the question is not run."""


class ModelGate:
    """Runs model work in worker threads, at most `concurrent` at once (2 cores: more would only
    thrash), with at most `queued` more waiting. A question is also refused (Busy, 503 +
    Retry-After) when its expected wait, the work ahead of it times the measured service time,
    is over `max_wait_s`: a client is told at once to come back rather than left waiting.
    When a waiting question reaches the front, it is dropped if its client has gone.
    Writes (adding, deleting articles) are never dropped or timed: they are rare and their
    time depends on their size.

    Admission is decided on the event loop, so a waiting request holds no thread: /healthz and
    the page keep answering while questions queue."""

    def __init__(self, concurrent: int, queued: int, max_wait_s: float) -> None:
        self._concurrent = concurrent
        self._capacity = concurrent + queued
        self.max_wait_s = max_wait_s
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop on first use
        self.inside = 0  # running and waiting
        self._service_times: deque[float] = deque(maxlen=SERVICE_TIMES_KEPT)
        self.service_s: float | None = None  # how long a question holds the models (p90 of the last few)
        self._wait_ratios: deque[float] = deque(maxlen=WAITS_KEPT)
        self.wait_factor = 1.0  # how much longer than foretold questions waited (see WAITS_KEPT)

    def observe(self, seconds: float) -> None:
        """Record how long one question held the models."""
        self._service_times.append(seconds)
        ordered = sorted(self._service_times)
        self.service_s = ordered[math.ceil(SERVICE_QUANTILE * len(ordered)) - 1]

    def observe_wait(self, waited_s: float, work_ahead_s: float) -> None:
        """Record how long an admitted question waited for a slot, against the work ahead of it."""
        self._wait_ratios.append(waited_s / work_ahead_s)
        ordered = sorted(self._wait_ratios)
        self.wait_factor = max(1.0, ordered[math.ceil(SERVICE_QUANTILE * len(ordered)) - 1])

    def _work_ahead_s(self) -> float:
        """The model time of the work ahead of a request arriving now (0 while a slot is free)."""
        ahead = self.inside - self._concurrent + 1
        if ahead <= 0 or self.service_s is None:
            return 0.0
        return ahead * self.service_s / self._concurrent

    def expected_wait_s(self) -> float:
        """How long a request arriving now would wait for a slot (0 while one is free)."""
        return self._work_ahead_s() * self.wait_factor

    def _refuse(self, why: str) -> Busy:
        # Retry-After: about when the work ahead now will be done.
        retry_after = max(1, math.ceil(self.expected_wait_s()))
        return Busy(f"the server is busy answering other questions ({why}); retry in {retry_after} s", retry_after)

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        question: bool = False,
        client_gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> T:
        if self.inside >= self._capacity:
            raise self._refuse(f"{self.inside} requests ahead")
        if question and self.expected_wait_s() > self.max_wait_s:
            raise self._refuse(
                f"a question now would wait about {self.expected_wait_s():.0f} s, the limit is {self.max_wait_s:g} s"
            )
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrent)
        work_ahead_s, arrived = self._work_ahead_s(), time.perf_counter()
        self.inside += 1
        try:
            async with self._limiter:
                if question and work_ahead_s > 0:
                    self.observe_wait(time.perf_counter() - arrived, work_ahead_s)
                if question and client_gone is not None and await client_gone():
                    raise ClientGone()
                started = time.perf_counter()
                result = await anyio.to_thread.run_sync(functools.partial(fn, *args))
                if question:
                    self.observe(time.perf_counter() - started)
                return result
        finally:
            self.inside -= 1


class BodySizeLimit:
    """Refuse request bodies over max_bytes with 413: at once by Content-Length, or, for a
    chunked body, once the bytes read pass the limit (the body is buffered up to the limit)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": f"request body over the limit of {self.max_bytes} bytes"}, 413)(
            scope, receive, send
        )


class FailureThrottle:
    """At most `limit` failures per client address in any `window_s`; an address at the limit
    is refused until its oldest failure in the window ages out. Bounded memory: at most
    MAX_ADDRESSES addresses are remembered (the oldest is forgotten first)."""

    MAX_ADDRESSES = 10_000

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def wait_s(self, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        failures = self._failures.get(address)
        if failures is None or len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[0] + self.window_s - self._clock())

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= self.MAX_ADDRESSES:
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(address, deque(maxlen=self.limit)).append(self._clock())


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


class AdminOnly:
    """Changing requests under `prefix` need `Authorization: Bearer <token>`. Checked here,
    before any route reads the body: an unauthenticated client cannot make the server parse
    megabytes of JSON just to be told 401. Wrong tokens are throttled per client address
    (429 + Retry-After), so the token cannot be guessed at thousands of tries a second."""

    def __init__(self, app: ASGIApp, token: str | None, prefix: str, failures_per_minute: int) -> None:
        self.app = app
        self.token = token
        self.prefix = prefix
        self.throttle = FailureThrottle(failures_per_minute)

    def _guarded(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        return scope.get("method") in CHANGING_METHODS and (path == self.prefix or path.startswith(self.prefix + "/"))

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        if not self.token:
            return JSONResponse({"detail": "changing articles is disabled: the server has no QA_ADMIN_TOKEN set"}, 403)
        address = _client_address(scope)
        wait = self.throttle.wait_s(address)
        if wait > 0:
            retry_after = math.ceil(wait)
            return JSONResponse(
                {"detail": f"too many wrong tokens from {address}; retry in {retry_after} s"},
                429,
                headers={"Retry-After": str(retry_after)},
            )
        authorization = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            self.throttle.failed(address)
            return JSONResponse(
                {"detail": "missing or wrong token: send Authorization: Bearer <QA_ADMIN_TOKEN>"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._guarded(scope):
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            scope.setdefault("state", {})[ADMIN_CHECKED] = True
        await self.app(scope, receive, send)


def _outcome(status: int | None, gone: bool) -> str:
    if gone or status == 499:
        return "client gone"
    if status is None:
        return "no response"
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "error"
    return "refused" if status >= 400 else "ok"


class AccessLog:
    """One log line per request, whatever became of it: client, method, path, status, time,
    and the outcome in words (ok, refused, busy, unavailable, client gone, error, or what
    the layer that ended the request put in scope[OUTCOME])."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        gone = False

        async def watched_receive() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            said_status, outcome = scope.get(OUTCOME) or (None, _outcome(status, gone))
            status = said_status or status
            access_log.info(
                '%s "%s %s" %s %.0f ms %s',
                _client_address(scope),
                scope.get("method"),
                scope.get("path"),
                status or "-",
                1000 * (time.perf_counter() - started),
                outcome,
            )
