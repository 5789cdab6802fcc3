"""What the routes share, and the FastAPI dependencies that hand it to them: the settings, the
pipeline once it is ready (503 until then), and the gate around model calls."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qa.config import Settings
from qa.index.replication import replica_state
from qa.index.store import QAIndexError
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline
from qa.serve.guards import ADMIN_CHECKED, ModelGate
from qa.serve.schemas import ReplicaHealth

log = logging.getLogger(__name__)

# Asked once at start, after the warm-up, to measure a question's service time before the first
# user asks: the gate bounds waits by it from the first burst on (and by the 90th percentile of the last
# questions served after that).
PROBE_QUESTION = "What happened, and when?"
# An index that could not be opened (CURRENT lost, a damaged generation) may be mended on disk
# while the server runs (`qa index --restore`); loading is tried again, at most this often, when
# a request finds the server in that state.
RELOAD_EVERY_S = 2.0


class AppState:
    """The pipeline once loaded (or why loading failed), and the gate in front of its models."""

    def __init__(
        self, settings: Settings, before_load: Callable[[], object] | None = None, node: str | None = None
    ) -> None:
        self.settings = settings
        # Run before the index is opened, in the loading thread (`qa serve --ray --replica-of`: the
        # first pull of the node's copy); an error it raises is the load's error (/healthz says it).
        self.before_load = before_load
        self.node = node  # the cluster node this server runs on, for /healthz (None: not on a cluster)
        self.pipeline: QAPipeline | None = None
        self.error: str | None = None
        self._retry_load = False  # the error is the index's: mending it on disk may cure it
        self._candidate: QAPipeline | None = None  # built (models loaded) even when its index failed
        self._loading = threading.Lock()
        self._last_try = 0.0
        self.gate = ModelGate(
            settings.max_concurrent_model_calls, settings.max_queued_requests, settings.max_queue_wait_s
        )
        # Writes have their own single thread and queue: a question never waits behind a write's
        # embedding (the pipeline's writer steps aside while questions are being answered).
        self.write_gate = ModelGate(
            1, settings.max_queued_requests, settings.max_queue_wait_s, busy_with="with other writes"
        )

    def start_loading(self, pipeline: QAPipeline | None = None) -> None:
        """Load in the background, so /healthz can say "loading" while the index is built."""
        if not self._loading.acquire(blocking=False):
            return  # a load is running
        self._last_try = time.monotonic()

        def run() -> None:
            try:
                self.load(pipeline)
            finally:
                self._loading.release()

        threading.Thread(target=run, name="qa-load", daemon=True).start()

    def retry_if_mendable(self) -> None:
        """After an index error, try loading again (in the background, at most every RELOAD_EVERY_S)."""
        if self._retry_load and time.monotonic() - self._last_try >= RELOAD_EVERY_S:
            self.start_loading()

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.store.close()

    def load(self, pipeline: QAPipeline | None = None) -> None:
        try:
            configure_torch_threads(self.settings.threads)
            pipeline = self._candidate = pipeline or self._candidate or QAPipeline(self.settings)
            if self.before_load is not None:
                self.before_load()
            report = pipeline.load_or_build()
            if report:
                for warning in report.warnings:
                    log.warning("seed ingest: %s", warning)
            pipeline.warm_up()
            started = time.perf_counter()
            pipeline.ask(PROBE_QUESTION)
            self.gate.observe(time.perf_counter() - started)
            self.pipeline, self.error, self._retry_load = pipeline, None, False
            log.info(
                "ready: %d articles; reader on %s, questions embedded on %s; a question takes about %.0f ms",
                pipeline.counts().articles,
                pipeline.reader_backend,
                pipeline.query_encoder,
                1000 * (self.gate.service_s or 0),
            )
        except Exception as exc:  # reported on /healthz and /ask; the server stays up to say so
            if not (self._retry_load and str(exc) == self.error):  # a retry that failed alike says nothing new
                log.exception("could not load the index or the models")
            self.error = str(exc)
            self._retry_load = isinstance(exc, QAIndexError)

    def replica(self) -> ReplicaHealth | None:
        """The copy's seq and lag when the index is a replica (two small files read: ~0.1 ms)."""
        state = replica_state(self.settings.index_dir)
        if state is None:
            return None
        lag, bound = state.lag_s(), self.settings.replica_max_lag_s
        return ReplicaHealth(
            seq=state.seq,
            generation=state.generation,
            lag_s=round(lag, 3),
            max_lag_s=bound,
            stale=bound is not None and lag > bound,
        )

    def fresh_pipeline(self) -> QAPipeline:
        """The pipeline, unless the index is a replica whose copy is older than the bound."""
        pipeline = self.ready_pipeline()
        replica = self.replica()
        if replica is not None and replica.stale:
            raise HTTPException(
                503,
                f"this replica's copy of the index is {replica.lag_s:.0f} s behind the writer "
                f"(QA_REPLICA_MAX_LAG_S {replica.max_lag_s:g} s): its pulls are not arriving; ask another replica",
                headers={"Retry-After": "5"},
            )
        return pipeline

    def ready_pipeline(self) -> QAPipeline:
        if self.pipeline is None:
            self.retry_if_mendable()
            detail = (
                f"not ready: {self.error}"
                if self.error
                else "still loading the models and the index; try again shortly"
            )
            raise HTTPException(503, detail, headers={"Retry-After": "5"})
        return self.pipeline


def get_state(request: Request) -> AppState:
    return request.app.state.qa


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_pipeline(state: StateDep) -> QAPipeline:
    return state.ready_pipeline()


def get_fresh_pipeline(state: StateDep) -> QAPipeline:
    return state.fresh_pipeline()


def get_gate(state: StateDep) -> ModelGate:
    return state.gate


def get_write_gate(state: StateDep) -> ModelGate:
    return state.write_gate


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[QAPipeline, Depends(get_pipeline)]
FreshPipelineDep = Annotated[QAPipeline, Depends(get_fresh_pipeline)]
GateDep = Annotated[ModelGate, Depends(get_gate)]
WriteGateDep = Annotated[ModelGate, Depends(get_write_gate)]


# The admin check itself runs as ASGI middleware (guards.AdminOnly), before the body is read; it
# marks the request as checked. This dependency declares a route admin-only: it documents the
# Bearer token in /docs and refuses a request the middleware did not check (a route mounted
# outside its prefix, or an app built without it), so a mistake fails closed.
_bearer = HTTPBearer(auto_error=False, description="QA_ADMIN_TOKEN of the server")


def require_admin(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> None:
    if not request.scope.get("state", {}).get(ADMIN_CHECKED):
        raise HTTPException(
            401,
            "this route needs the admin token, and the server did not check it",
            headers={"WWW-Authenticate": "Bearer"},
        )
