"""What the chat page needs: the page itself and /healthz, which it polls until the models are
loaded (its static files are mounted by the app)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates

from qa.config import MAX_QUESTION_CHARS
from qa.resources import WEB_DIR
from qa.serve.deps import StateDep
from qa.serve.schemas import Health

router = APIRouter()
templates = Jinja2Templates(directory=WEB_DIR / "templates")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "index.html", {"max_question_chars": MAX_QUESTION_CHARS})


# Not async: counting reads SQLite, which must not block the event loop (FastAPI runs a plain
# `def` route in its thread pool).
@router.get("/healthz", response_model=Health, tags=["health"])
def healthz(state: StateDep) -> JSONResponse:
    if state.pipeline is not None:
        counts = state.pipeline.counts()
        replica = state.replica()
        stale = replica is not None and replica.stale
        health = Health(
            status="stale" if stale else "ready",
            articles=counts.articles,
            passages=counts.passages,
            reader_backend=state.pipeline.reader_backend,
            query_encoder=state.pipeline.query_encoder,
            passage_embedder=state.pipeline.passage_embedder,
            replica=replica,
            node=state.node,
        )
        # 503 while stale: a load balancer polling /healthz sends questions to the other replicas.
        return JSONResponse(health.model_dump(), status_code=503 if stale else 200)
    state.retry_if_mendable()
    status = "error" if state.error else "loading"
    return JSONResponse(Health(status=status, detail=state.error, node=state.node).model_dump(), status_code=503)
