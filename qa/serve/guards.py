"""Guards for a server left running: a bounded gate around model calls, a body size limit."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")


class Busy(RuntimeError):
    """Too many requests are already waiting for the models."""


class ModelGate:
    """Runs model work in worker threads, at most `concurrent` at once (2 cores: more would
    only thrash), with at most `queued` more waiting; beyond that a request is refused at once
    (503 + Retry-After) instead of piling up without bound.

    Admission is decided on the event loop, so a waiting request holds no thread: /healthz
    and the page keep answering while questions queue."""

    def __init__(self, concurrent: int, queued: int) -> None:
        self._concurrent = concurrent
        self._capacity = concurrent + queued
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop on first use
        self.inside = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.inside >= self._capacity:
            raise Busy("the server is busy answering other questions; retry shortly")
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrent)
        self.inside += 1
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._limiter)
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
                await self._reject(send)
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
                await self._reject(send)
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

    async def _reject(self, send: Send) -> None:
        body = f'{{"detail":"request body over the limit of {self.max_bytes} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
