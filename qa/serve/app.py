"""FastAPI app: thin routes over QAPipeline, the chat page, and the guards around them."""

from __future__ import annotations

import hmac
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from qa.serve.schemas import (
    AddArticlesRequest, AddArticlesResponse, AnswerOut, ArticleFull, ArticleOut, AskRequest, AskResponse, Health,
    PeriodOut,
)
from qa.config import MAX_QUESTION_CHARS, Settings
from qa.serve.guards import BodySizeLimit, Busy, ModelGate
from qa.ingest.readers import ArticleTooLargeError, IngestError, IngestReport, make_article, parse_bytes
from qa.pipeline import ArticleNotFoundError, QAPipeline, QuestionError
from qa.retrieval.hybrid import FilterError, Filters
from qa.types import Answer, Article

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
NO_ANSWER_MESSAGE = "I couldn't find that in the articles."
UNSURE_MESSAGE = "I'm not sure. The best candidates, with their sources:"
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # on /articles: admin token needed
FILE_TYPES = {"text/plain": ".txt", "text/markdown": ".md", "text/html": ".html", "application/x-ndjson": ".jsonl", "application/jsonl": ".jsonl"}


class AppState:
    """What the routes share: the pipeline once loaded, and why not if loading failed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline: QAPipeline | None = None
        self.error: str | None = None
        self.gate = ModelGate(settings.max_concurrent_model_calls, settings.max_queued_requests)

    def load(self, pipeline: QAPipeline | None = None) -> None:
        try:
            from qa.models import configure_torch_threads

            configure_torch_threads(self.settings.threads)
            pipeline = pipeline or QAPipeline(self.settings)
            report = pipeline.load_or_build()
            if report:
                for warning in report.warnings:
                    log.warning("seed ingest: %s", warning)
            pipeline.warm_up()
            self.pipeline = pipeline
            log.info("ready: %d articles", len(pipeline.articles()))
        except Exception as exc:  # reported on /healthz and /ask; the server stays up to say so
            log.exception("could not load the index or the models")
            self.error = str(exc)

    def ready_pipeline(self) -> QAPipeline:
        if self.pipeline is None:
            detail = f"not ready: {self.error}" if self.error else "still loading the models and the index; try again shortly"
            raise HTTPException(503, detail, headers={"Retry-After": "5"})
        return self.pipeline


def _article_out(a: Article) -> ArticleOut:
    return ArticleOut(id=a.id, title=a.title, date=a.date, source=a.source, url=a.url)


def _answer_out(a: Answer) -> AnswerOut:
    return AnswerOut(text=a.text, score=round(a.score, 4),
                     confidence=None if a.confidence is None else round(a.confidence, 3),
                     article=_article_out(a.article), passage=a.passage,
                     passage_start=a.passage_start, start=a.start, end=a.end)


def create_app(settings: Settings | None = None, pipeline: QAPipeline | None = None) -> FastAPI:
    settings = settings or Settings()
    state = AppState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Load in the background so /healthz can say "loading" while the index is built.
        threading.Thread(target=state.load, args=(pipeline,), name="qa-load", daemon=True).start()
        yield

    app = FastAPI(
        title="News QA",
        version="0.1.0",
        description="Ask questions about news articles; answers are exact spans of the articles, with their sources.",
        lifespan=lifespan,
    )
    app.state.qa = state
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    templates = Jinja2Templates(directory=WEB_DIR / "templates")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable sentence per problem; never echo the input back (it may be 1 MB).
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems), "errors": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})

    def admin_refusal(authorization: str | None) -> JSONResponse | None:
        token = settings.admin_token
        if not token:
            return JSONResponse({"detail": "changing articles is disabled: the server has no QA_ADMIN_TOKEN set"}, 403)
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return JSONResponse({"detail": "missing or wrong token: send Authorization: Bearer <QA_ADMIN_TOKEN>"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        return None

    @app.middleware("http")
    async def admin_only_changes(request: Request, call_next):
        # Checked here, before any route reads the body: an unauthenticated client cannot
        # make the server parse megabytes of JSON just to be told 401.
        path = request.url.path
        if request.method in CHANGING_METHODS and (path == "/articles" or path.startswith("/articles/")):
            refusal = admin_refusal(request.headers.get("authorization"))
            if refusal is not None:
                return refusal
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request):
        return templates.TemplateResponse(request, "index.html", {"max_question_chars": MAX_QUESTION_CHARS})

    @app.get("/healthz", response_model=Health)
    async def healthz() -> JSONResponse:
        if state.pipeline is not None:
            data = state.pipeline.state.data
            return JSONResponse(Health(status="ready", articles=len(data.articles), passages=len(data.chunks)).model_dump())
        status = "error" if state.error else "loading"
        return JSONResponse(Health(status=status, detail=state.error).model_dump(), status_code=503)

    @app.post("/ask", response_model=AskResponse)
    async def ask(body: AskRequest) -> AskResponse:
        pipeline = state.ready_pipeline()
        try:
            f = body.filters
            filters = Filters(
                source=f.source if f else None,
                date_from=f.date_from.isoformat() if f and f.date_from else None,
                date_to=f.date_to.isoformat() if f and f.date_to else None,
            )
            result = await state.gate.run(pipeline.ask, body.question, body.top_k, filters, body.history_turns())
        except (QuestionError, FilterError) as exc:
            raise HTTPException(422, str(exc)) from exc
        period = result.period
        return AskResponse(
            question=result.question,
            answers=[_answer_out(a) for a in result.answers],
            no_answer=result.no_answer,
            unsure=result.unsure,
            newest_first=result.newest_first,
            period=PeriodOut(date_from=period.date_from, date_to=period.date_to, phrase=period.phrase) if period else None,
            message=NO_ANSWER_MESSAGE if result.no_answer else UNSURE_MESSAGE if result.unsure else None,
            timing_ms=result.timing_ms,
        )

    @app.get("/articles", response_model=list[ArticleOut])
    async def list_articles() -> list[ArticleOut]:
        articles = state.ready_pipeline().articles()
        newest_first = sorted(sorted(articles, key=lambda a: a.title.lower()), key=lambda a: a.date or "", reverse=True)
        return [_article_out(a) for a in newest_first]

    @app.get("/articles/{article_id}", response_model=ArticleFull)
    async def get_article(article_id: str) -> ArticleFull:
        article = state.ready_pipeline().state.data.articles.get(article_id)
        if article is None:
            raise HTTPException(404, f"no article with id {article_id!r}")
        return ArticleFull(**_article_out(article).model_dump(), text=article.text)

    def _too_large_or_invalid(exc: IngestError, where: str = "") -> HTTPException:
        return HTTPException(413 if isinstance(exc, ArticleTooLargeError) else 422, f"{where}{exc}")

    def _add(pipeline: QAPipeline, articles: list[Article]) -> AddArticlesResponse:
        ids = pipeline.add_articles(articles)
        return AddArticlesResponse(ids=ids, articles=len(pipeline.articles()))

    @app.post("/articles", response_model=AddArticlesResponse, status_code=201)
    async def add_articles(body: AddArticlesRequest) -> AddArticlesResponse:
        pipeline = state.ready_pipeline()
        articles = []
        for n, a in enumerate(body.articles):
            try:
                articles.append(make_article(a.text, a.title, id=a.id, date=a.date.isoformat() if a.date else None,
                                             source=a.source, url=a.url, max_chars=settings.max_article_chars))
            except IngestError as exc:
                raise _too_large_or_invalid(exc, f"articles[{n}]: ") from exc
        return await state.gate.run(_add, pipeline, articles)

    @app.post("/articles/file", response_model=AddArticlesResponse, status_code=201,
              summary="Add articles from one file's bytes (text, Markdown, HTML or JSONL, by Content-Type)")
    async def add_file(request: Request) -> AddArticlesResponse:
        pipeline = state.ready_pipeline()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        suffix = FILE_TYPES.get(content_type)
        if suffix is None:
            raise HTTPException(415, f"Content-Type must be one of {', '.join(FILE_TYPES)}")
        raw = await request.body()

        def parse_and_add() -> AddArticlesResponse:
            report = IngestReport()
            try:
                parse_bytes(raw, suffix, "upload", report, settings.max_article_chars)
            except IngestError as exc:
                raise _too_large_or_invalid(exc) from exc
            if not report.articles:
                raise HTTPException(422, "; ".join(report.warnings) or "no articles in the file")
            return _add(pipeline, report.articles)

        return await state.gate.run(parse_and_add)

    @app.delete("/articles/{article_id}", status_code=204)
    async def delete_article(article_id: str) -> None:
        pipeline = state.ready_pipeline()
        try:
            await state.gate.run(pipeline.delete_article, article_id)
        except ArticleNotFoundError as exc:
            raise HTTPException(404, f"no article with id {article_id!r}") from exc

    return app
