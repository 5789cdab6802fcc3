"""/articles: list and read the articles (anyone); add and delete them (admin token).

Adding and deleting go through their own gate, one write at a time in one thread, never the
questions' queue: questions do not wait behind a write (the pipeline's writer steps aside while
they are answered). A write is never refused for how long it would wait, nor dropped once
queued; only when QA_MAX_QUEUED_REQUESTS writes already wait is one refused (503, "busy with
other writes", Retry-After). An upload is stored only once its whole body has arrived."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from qa.ingest.files import ArticleTooLargeError, IngestError, IngestReport, make_article, parse_bytes
from qa.pipeline import ArticleNotFoundError, QAPipeline
from qa.serve.deps import PipelineDep, SettingsDep, WriteGateDep, require_admin
from qa.serve.schemas import AddArticlesRequest, AddArticlesResponse, ArticleFull, ArticleOut, ArticlePage
from qa.types import Article

router = APIRouter(prefix="/articles", tags=["articles"])
admin = [Depends(require_admin)]

FILE_TYPES = {
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/html": ".html",
    "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
}
# A one-article file (not JSONL) of more than 4 bytes per allowed character cannot hold an
# article within the limit as UTF-8 text; HTML around it rarely needs more. Refused while the
# body arrives, before it is parsed (trafilatura takes minutes over ten megabytes).
MAX_BYTES_PER_CHAR = 4
MAX_SKIPPED_LISTED = 100  # a JSONL of a million bad lines answers with their count and the first few
MAX_OFFSET = 1_000_000_000  # SQLite takes at most a signed 64-bit OFFSET; no archive nears this


def _add(pipeline: QAPipeline, articles: list[Article], skipped: list[str]) -> AddArticlesResponse:
    ids = pipeline.add_articles(articles)
    return AddArticlesResponse(
        ids=ids, articles=pipeline.counts().articles, skipped=skipped[:MAX_SKIPPED_LISTED], skipped_count=len(skipped)
    )


async def _read_body(request: Request, max_bytes: int | None) -> bytes:
    """The whole body, refused (413) as soon as it is known to pass `max_bytes` (None: the
    server's body limit alone, applied by guards.BodySizeLimit)."""
    if max_bytes is None:
        return await request.body()
    too_large = f"a one-article file is at most {max_bytes} bytes ({MAX_BYTES_PER_CHAR} per allowed character)"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ArticleTooLargeError(too_large)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > max_bytes:
            raise ArticleTooLargeError(too_large)
    return bytes(body)


# Plain `def` for the routes that read SQLite: FastAPI runs them in its thread pool, off the
# event loop (each thread reads through its own connection, qa/index/store.py).
@router.get("", response_model=ArticlePage)
def list_articles(
    pipeline: PipelineDep,
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    limit: int = Query(50, ge=1, le=500),
    q: str | None = Query(None, max_length=200, description="only articles whose title or source contains this"),
) -> ArticlePage:
    """A page of the articles, newest first (undated last); `total` says how many match."""
    page, total = pipeline.articles(offset, limit, q.strip() if q and q.strip() else None)
    return ArticlePage(articles=[ArticleOut.from_article(a) for a in page], total=total, offset=offset, limit=limit)


@router.get("/{article_id}", response_model=ArticleFull)
def get_article(article_id: str, pipeline: PipelineDep) -> ArticleFull:
    article = pipeline.article(article_id)
    if article is None:
        raise HTTPException(404, f"no article with id {article_id!r}")
    return ArticleFull.from_article(article)


@router.post("", response_model=AddArticlesResponse, status_code=201, dependencies=admin)
async def add_articles(
    body: AddArticlesRequest, pipeline: PipelineDep, gate: WriteGateDep, settings: SettingsDep
) -> AddArticlesResponse:
    articles = []
    for n, a in enumerate(body.articles):
        try:
            articles.append(
                make_article(
                    a.text,
                    a.title,
                    id=a.id,
                    date=a.date.isoformat() if a.date else None,
                    source=a.source,
                    url=a.url,
                    max_chars=settings.max_article_chars,
                )
            )
        except IngestError as exc:  # the same error (413 or 422), saying which article
            raise type(exc)(f"articles[{n}]: {exc}") from exc
    return await gate.run(_add, pipeline, articles, [])


@router.post(
    "/file",
    response_model=AddArticlesResponse,
    status_code=201,
    dependencies=admin,
    summary="Add articles from one file's bytes (text, Markdown, HTML or JSONL, by Content-Type)",
)
async def add_file(
    request: Request, pipeline: PipelineDep, gate: WriteGateDep, settings: SettingsDep
) -> AddArticlesResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    suffix = FILE_TYPES.get(content_type)
    if suffix is None:
        raise HTTPException(415, f"Content-Type must be one of {', '.join(FILE_TYPES)}")
    one_article = suffix != ".jsonl"
    raw = await _read_body(request, MAX_BYTES_PER_CHAR * settings.max_article_chars if one_article else None)

    def parse_and_add() -> AddArticlesResponse:
        report = IngestReport()
        parse_bytes(raw, suffix, "upload", report, settings.max_article_chars)
        if not report.articles:
            raise IngestError("; ".join(report.warnings) or "no articles in the file")
        return _add(pipeline, report.articles, report.warnings)

    return await gate.run(parse_and_add)


@router.delete("/{article_id}", status_code=204, dependencies=admin)
async def delete_article(article_id: str, pipeline: PipelineDep, gate: WriteGateDep) -> None:
    try:
        await gate.run(pipeline.delete_article, article_id)
    except ArticleNotFoundError as exc:
        raise HTTPException(404, f"no article with id {article_id!r}") from exc
