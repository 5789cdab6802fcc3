"""uvicorn with connection-level guards, which act before a request reaches the app: a deadline
for a request's headers and one for its body (a client dripping bytes is answered 408 and cut
off, not held open), a bound on the size of a request's headers (431 beyond), and a cap on open
connections per client address (beyond it: 429).

uvicorn has a keep-alive timeout between requests but none while a request is being read, and
its httptools parser (llhttp) has no limit on header size (h11's max_incomplete_event_size has
no counterpart there), so these live in a subclass of its httptools protocol."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from qa.config import Settings
from qa.serve.guards import OUTCOME, access_log


class ConnectionLimits:
    """The limits, and the open connections per client address, shared by all connections."""

    def __init__(
        self, header_timeout_s: float, body_timeout_s: float, max_per_client: int, max_header_bytes: int
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.max_per_client = max_per_client
        self.max_header_bytes = max_header_bytes
        self.open: Counter[str] = Counter()

    def opened(self, address: str) -> bool:
        """Count a new connection; False when it is one too many for its address."""
        self.open[address] += 1
        return self.open[address] <= self.max_per_client

    def closed(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class GuardedHttpProtocol(HttpToolsProtocol):
    """One connection. `limits` is set on the subclass that `guarded_protocol` makes per server."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._address = "-"
        # Bytes received while the current request's line and headers are being read. httptools
        # keeps a header's value in memory until the header ends, so without this bound one
        # endless header grows the server by whatever the client sends.
        self._in_headers = True
        self._header_bytes = 0
        self._headers_ended = 0  # requests whose headers have ended on this connection

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, phase, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _reply_and_close(self, status: int, detail: str, extra_headers: bytes = b"") -> None:
        body = json.dumps({"detail": detail}).encode()
        self.transport.write(
            STATUS_LINE[status] + b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n%s\r\n%s" % (len(body), extra_headers, body)
        )
        self.transport.close()

    def _expired(self, phase: str, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        reason = f"{phase} not complete within {seconds:g} s"
        cycle = self.cycle if phase == "body" else None
        if cycle is None:  # no request for the app yet: this is its only log line
            access_log.warning('%s "- -" 408 - %s', self._address, reason)
            self._reply_and_close(408, f"request {reason}")
            return
        # For the access log. uvicorn types the scope as a TypedDict of ASGI's own keys; ASGI lets
        # a server add its own.
        cycle.scope[OUTCOME] = (408, reason)  # type: ignore[literal-required]
        if not cycle.response_started:
            self._reply_and_close(408, f"request {reason}")
        cycle.disconnected = True  # the app now reads a disconnect, and what it sends is dropped
        cycle.message_event.set()
        self.transport.close()

    # asyncio.Protocol and httptools parser callbacks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else "-"
        if not self.limits.opened(self._address):
            access_log.warning(
                '%s "- -" 429 - over %d open connections from this address', self._address, self.limits.max_per_client
            )
            self._reply_and_close(429, f"too many open connections from {self._address}", b"retry-after: 1\r\n")
            return
        self._arm("headers", self.limits.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        was_in_headers, ended_before = self._in_headers, self._headers_ended
        super().data_received(data)
        # Only a segment read wholly inside one request's headers counts. One in which headers
        # ended holds body bytes too, and may even hold a whole request (then _in_headers is
        # already True again for the next one): a 70 kB POST in one segment is not 70 kB of headers.
        if not was_in_headers or self._headers_ended != ended_before or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        if self._header_bytes > self.limits.max_header_bytes:
            self._disarm()
            access_log.warning('%s "- -" 431 - headers over %d bytes', self._address, self.limits.max_header_bytes)
            self._reply_and_close(431, f"request headers over the limit of {self.limits.max_header_bytes} bytes")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.limits.closed(self._address)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._arm("headers", self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._headers_ended += 1
        self._disarm()
        super().on_headers_complete()
        self._arm("body", self.limits.body_timeout_s)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_headers, self._header_bytes = True, 0  # what comes next is the next request's
        super().on_message_complete()


def guarded_protocol(settings: Settings) -> type[GuardedHttpProtocol]:
    limits = ConnectionLimits(
        settings.header_timeout_s,
        settings.body_timeout_s,
        settings.max_connections_per_client,
        settings.max_header_bytes,
    )
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})


def uvicorn_config(app: FastAPI, settings: Settings, host: str, port: int) -> uvicorn.Config:
    # access_log off: guards.AccessLog writes one line per request, with its outcome.
    # X-Forwarded-For is believed only from the proxies named in QA_TRUSTED_PROXIES (uvicorn's
    # own ProxyHeadersMiddleware); uvicorn's default would trust it from 127.0.0.1, so that any
    # local client could name itself anyone to the token throttle and the access log.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(settings),
        ws="none",
        access_log=False,
        log_level="info",
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


def serve(app: FastAPI, settings: Settings, host: str, port: int) -> None:
    logging.getLogger("qa").setLevel(logging.INFO)  # access lines and "ready"
    uvicorn.Server(uvicorn_config(app, settings, host, port)).run()
