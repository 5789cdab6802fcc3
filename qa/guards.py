"""Guards for a server left running: a bounded gate around model calls, a body size limit."""

from __future__ import annotations

import threading

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Busy(RuntimeError):
    """Too many requests are already waiting for the models."""


class ModelGate:
    """At most `concurrent` model calls at once (2 cores: more would only thrash), and at most
    `queued` more waiting; beyond that a request is refused at once (503 + Retry-After)
    instead of piling up without bound."""

    def __init__(self, concurrent: int, queued: int) -> None:
        self._slots = threading.BoundedSemaphore(concurrent)
        self._capacity = concurrent + queued
        self._inside = 0
        self._lock = threading.Lock()

    def __enter__(self) -> "ModelGate":
        with self._lock:
            if self._inside >= self._capacity:
                raise Busy("the server is busy answering other questions; retry shortly")
            self._inside += 1
        self._slots.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
        with self._lock:
            self._inside -= 1


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over max_bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = f'{{"detail":"request body over the limit of {self.max_bytes} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
