"""create_app: the FastAPI app wired from its parts (routers, guards, error handlers)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect

from qa.config import Settings
from qa.errors import QAError
from qa.index.store import IndexConflictError, IndexReadOnlyError, QAIndexError
from qa.ingest.files import ArticleTooLargeError
from qa.loading import ModelNotFoundError
from qa.pipeline import ArticleNotFoundError, QAPipeline
from qa.resources import WEB_DIR
from qa.serve.deps import AppState
from qa.serve.guards import OUTCOME, AccessLog, AdminOnly, BodySizeLimit, Busy, ClientGone
from qa.serve.routers import articles, ask, pages

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
# The status of each user error; any other QAError is a 422 (the request cannot be done as sent).
ERROR_STATUS: dict[type[QAError], int] = {
    ArticleTooLargeError: 413,
    ArticleNotFoundError: 404,
    IndexConflictError: 409,  # another process holds the index for writing; the message says who
    IndexReadOnlyError: 403,  # a replica: writes go to the writer it is pulled from
    QAIndexError: 503,  # the server's index cannot be used; the message says how to fix it
    ModelNotFoundError: 503,
}


def _status_for(exc: QAError) -> int:
    return next((ERROR_STATUS[c] for c in type(exc).__mro__ if c in ERROR_STATUS), 422)


async def _user_error(request: Request, exc: QAError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=_status_for(exc))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # One readable sentence per problem; never echo the input back (it may be 1 MB).
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(problems), "errors": problems}, status_code=422)


async def _busy(request: Request, exc: Busy) -> JSONResponse:
    request.scope[OUTCOME] = (None, "busy")
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after_s)})


async def _client_gone(request: Request, exc: ClientGone | ClientDisconnect) -> Response:
    # The connection layer may have said why already (408: the body was too slow).
    request.scope.setdefault(OUTCOME, (499, "client gone"))
    return Response(status_code=499)  # nginx's "client closed request": nobody reads it, the access log does


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)


def _add_error_handlers(app: FastAPI) -> None:
    # Starlette calls each handler with the class it is registered for, but types every handler
    # as taking any Exception: a handler of a subclass does not type-check (arg-type).
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(QAError, _user_error)  # type: ignore[arg-type]
    app.add_exception_handler(Busy, _busy)  # type: ignore[arg-type]
    app.add_exception_handler(ClientGone, _client_gone)  # type: ignore[arg-type]
    # A body cut off by its client (or by the body deadline) is not a server error: no 500, no traceback.
    app.add_exception_handler(ClientDisconnect, _client_gone)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


def create_app(
    settings: Settings | None = None,
    pipeline: QAPipeline | None = None,
    before_load: Callable[[], object] | None = None,
    node: str | None = None,
) -> FastAPI:
    """The app over `settings`' index. `before_load` runs in the loading thread before the index
    is opened (`qa serve --ray --replica-of`: the first pull; /healthz says loading meanwhile);
    `node` names the cluster node on /healthz."""
    settings = settings or Settings()
    state = AppState(settings, before_load, node)
    if settings.admin_token and len(settings.admin_token) < MIN_TOKEN_CHARS:
        log.warning(
            "QA_ADMIN_TOKEN has %d characters; use at least %d, e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(24))'",
            len(settings.admin_token),
            MIN_TOKEN_CHARS,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load in the background so /healthz can say "loading" while the index is built.
        state.start_loading(pipeline)
        yield
        state.close()  # checkpoint the database: what was acknowledged is in store.sqlite itself

    app = FastAPI(
        title="News QA",
        version="0.1.0",
        description="Ask questions about news articles; answers are exact spans of the articles, with their sources.",
        lifespan=lifespan,
    )
    app.state.qa = state
    app.include_router(pages.router)
    app.include_router(ask.router)
    app.include_router(articles.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    _add_error_handlers(app)

    # The last added runs first. The admin check and the body limit both act before the body is
    # read; CORS headers go on their refusals too; the access log sees every outcome.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        AdminOnly,
        token=settings.admin_token,
        prefix=articles.router.prefix,
        failures_per_minute=settings.max_auth_failures_per_minute,
    )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(AccessLog)
    return app
