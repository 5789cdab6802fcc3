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
# ... as their 90th percentile for the work ahead of a question, not their median: a question
# admitted because that work should end in time must rarely wait longer (measured: with the
# median, 50 clients' answered p95 overshot the limit by 1.7 s on 2 cores).
SERVICE_QUANTILE = 0.9
# The aim: an admitted question is answered within max_wait_s plus a typical (median) service
# time, its own. It is a forecast, not a deadline (docs/server.md): on a machine whose cores other
# work takes, answers have come later, and nothing here can make the cores faster. Forecast from
# service times alone, answers still came late: between one question leaving the models and the
# next entering, the event loop, busy with HTTP and refusals on 2 shared cores, hands over late
# (one answer every 613 ms while a question held the models 552 ms), and a question's own service
# runs past the median. So the forecast is scaled by how late the last LATENESS_KEPT admitted
# questions were against theirs: the largest of those ratios, never below 1. Not their 95th
# percentile: under load nearly every admitted question is forecast right at the promise, so
# scaling by the p95 of the lateness puts the p95 of answers right on it, over as often as under
# (measured: 5,258 ms against 5,233); the largest of 40 is about the 97.5th percentile.
LATENESS_KEPT = 40
# Until that many answers have been seen, the forecast rests on the probe question run alone at
# start. Under a sudden crowd (50 clients at once) questions ran 20-30% longer than it, and the
# first dozen admitted were answered up to 1.4 s past the promise, a third of the late answers
# of a 60 s run; so until then the forecast assumes answers that late.
STARTUP_LATENESS = 1.3
STARTUP_ANSWERS = 10


def _quantile(values: deque[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


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
    Retry-After) when it would be answered later than `max_wait_s` plus a typical service time:
    forecast from the work ahead of it and its own at the measured service time, scaled by how
    late recent answers came against their forecasts. A client is told at once to come back
    rather than left waiting.
    When a waiting question reaches the front, it is dropped if its client has gone.
    Writes (adding, deleting articles) are never dropped or timed: they are rare and their
    time depends on their size.

    Admission is decided on the event loop, so a waiting request holds no thread: /healthz and
    the page keep answering while questions queue."""

    def __init__(
        self,
        concurrent: int,
        queued: int,
        max_wait_s: float,
        busy_with: str = "answering other questions",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._clock = clock  # seconds; tests pass a clock of their own
        self._concurrent = concurrent
        self.busy_with = busy_with  # for the 503's message: what the requests ahead are doing
        self._capacity = concurrent + queued
        self.max_wait_s = max_wait_s
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop on first use
        self.inside = 0  # running and waiting
        self._service_times: deque[float] = deque(maxlen=SERVICE_TIMES_KEPT)
        self.service_s: float | None = None  # how long a question holds the models (p90 of the last few)
        self.typical_service_s: float | None = None  # ... their median
        self.longest_service_s: float | None = None  # ... their longest
        self._lateness: deque[float] = deque(maxlen=LATENESS_KEPT)
        self.lateness = STARTUP_LATENESS  # how much later than forecast recent questions were answered, at most

    def observe(self, seconds: float) -> None:
        """Record how long one question held the models."""
        self._service_times.append(seconds)
        self.service_s = _quantile(self._service_times, SERVICE_QUANTILE)
        self.typical_service_s = _quantile(self._service_times, 0.5)
        self.longest_service_s = max(self._service_times)

    def observe_lateness(self, answered_after_s: float, forecast_s: float) -> None:
        """Record when an admitted question was answered, against its forecast."""
        self._lateness.append(answered_after_s / forecast_s)
        floor = STARTUP_LATENESS if len(self._lateness) < STARTUP_ANSWERS else 1.0
        self.lateness = max(floor, *self._lateness)

    def _ahead(self) -> int:
        """Requests that a request arriving now would wait for (0 while a slot is free)."""
        return max(0, self.inside - self._concurrent + 1)

    def _forecast_s(self) -> float:
        """Model time until a question arriving now would be answered: the work ahead of it,
        then its own (0 while a slot is free: it runs at once, nothing to forecast). One of
        them may run as long as the longest recent one: a single slow question delays every
        question queued behind it, so its excess alone put a dozen answers past the promise
        (measured: 16 answers in a row 0.5-0.8 s late, the answered p95 3% over)."""
        if not self._ahead() or self.service_s is None:
            return 0.0
        slowest_excess = (self.longest_service_s or self.service_s) - self.service_s
        return (self._ahead() / self._concurrent + 1) * self.service_s + slowest_excess

    def expected_wait_s(self) -> float:
        """How long a request arriving now would wait for a slot (0 while one is free)."""
        if self.service_s is None:
            return 0.0
        return self._ahead() * self.service_s / self._concurrent * self.lateness

    def _too_late(self) -> bool:
        """Whether a question arriving now would be answered later than promised."""
        return self._forecast_s() * self.lateness > self.max_wait_s + (self.typical_service_s or 0.0)

    def _refuse(self, why: str) -> Busy:
        # Retry-After: about when the work ahead now will be done.
        retry_after = max(1, math.ceil(self.expected_wait_s()))
        return Busy(f"the server is busy {self.busy_with} ({why}); retry in {retry_after} s", retry_after)

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        question: bool = False,
        client_gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> T:
        if self.inside >= self._capacity:
            raise self._refuse(f"{self.inside} requests ahead")
        if question and self._too_late():
            raise self._refuse(
                f"a question now would wait about {self.expected_wait_s():.0f} s, the limit is {self.max_wait_s:g} s"
            )
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrent)
        forecast_s, arrived = self._forecast_s(), self._clock()
        self.inside += 1
        try:
            async with self._limiter:
                if question and client_gone is not None and await client_gone():
                    raise ClientGone()
                started = self._clock()
                result = await anyio.to_thread.run_sync(functools.partial(fn, *args))
                if question:
                    finished = self._clock()
                    self.observe(finished - started)
                    if forecast_s > 0:
                        self.observe_lateness(finished - arrived, forecast_s)
                return result
        finally:
            self.inside -= 1


class BodySizeLimit:
    """Refuse request bodies over max_bytes with 413: at once by Content-Length, or, for a
    chunked body, once the bytes read pass the limit (the body is buffered up to the limit).
    A chunked body whose client leaves (or is cut off) before its last chunk never reaches the
    app: a cut-off upload must not be stored as if it were whole."""

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
            if message["type"] != "http.request":  # http.disconnect: the body will never be whole
                scope.setdefault(OUTCOME, (499, "client gone"))
                return
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
    megabytes of JSON just to be told 401.

    Wrong tokens are throttled per client address (the connection's peer, or what a trusted
    proxy says: server.uvicorn_config), so the token cannot be guessed at thousands of tries a
    second; the right token is never refused, so no one can lock the admin out by sending wrong
    tokens. An answer to a token is an answer to a guess, so past the limit a wrong token's 429
    is only sent once the address's window frees (up to a minute): each guess then holds one of
    the address's connections (QA_MAX_CONNECTIONS_PER_CLIENT) that long, which bounds guesses
    per address to about that many a minute however fast they are sent."""

    def __init__(
        self, app: ASGIApp, token: str | None, prefix: str, failures_per_minute: int, window_s: float = 60.0
    ) -> None:
        self.app = app
        self.token = token
        self.prefix = prefix
        self.throttle = FailureThrottle(failures_per_minute, window_s)

    def _guarded(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        return scope.get("method") in CHANGING_METHODS and (path == self.prefix or path.startswith(self.prefix + "/"))

    def _right_token(self, scope: Scope) -> bool:
        assert self.token is not None
        authorization = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def _refusal(self, scope: Scope, receive: Receive) -> JSONResponse | None:
        if not self.token:
            return JSONResponse({"detail": "changing articles is disabled: the server has no QA_ADMIN_TOKEN set"}, 403)
        if self._right_token(scope):
            return None
        address = _client_address(scope)
        wait = self.throttle.wait_s(address)
        self.throttle.failed(address)
        if wait > 0:
            with anyio.move_on_after(wait):  # or until the client leaves: nobody to answer then
                while (await receive())["type"] != "http.disconnect":
                    pass
            retry_after = math.ceil(self.throttle.wait_s(address)) or 1
            return JSONResponse(
                {"detail": f"too many wrong tokens from {address}; retry in {retry_after} s"},
                429,
                headers={"Retry-After": str(retry_after)},
            )
        return JSONResponse(
            {"detail": "missing or wrong token: send Authorization: Bearer <QA_ADMIN_TOKEN>"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._guarded(scope):
            refusal = await self._refusal(scope, receive)
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
