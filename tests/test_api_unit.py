"""API behaviour that needs no real model: auth modes and their throttle, loading state, the
busy gate, input checks, error statuses."""

import json
import logging
import threading
import time

import anyio
import pytest
from fastapi.testclient import TestClient

from qa.config import Settings
from qa.pipeline import QAPipeline
from qa.serve.app import create_app
from qa.serve.guards import STARTUP_ANSWERS, STARTUP_LATENESS, AdminOnly, Busy, FailureThrottle, ModelGate
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader

TOKEN = "unit-test-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def seeds(tmp_path):
    d = tmp_path / "seeds"
    d.mkdir()
    (d / "a.txt").write_text("Treaty news\nNew Start is set to expire in 2021, officials said.")
    return d


def app_client(tmp_path, **settings):
    s = Settings(index_dir=tmp_path / "index", seeds_dir=seeds(tmp_path), no_answer_threshold=0.5, **settings)
    return TestClient(create_app(s, QAPipeline(s, FakeEmbedder(), FakeReader())))


def wait_ready(client):
    for _ in range(200):
        if client.get("/healthz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(client.get("/healthz").json())


def test_write_endpoints_are_disabled_without_a_configured_token(tmp_path):
    with app_client(tmp_path) as client:
        wait_ready(client)
        r = client.post("/articles", json={"articles": [{"text": "x"}]}, headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "QA_ADMIN_TOKEN" in r.json()["detail"]
        assert client.delete("/articles/x", headers={"Authorization": "Bearer anything"}).status_code == 403
        assert client.post("/ask", json={"question": "When does it expire?"}).json()["answers"][0]["text"] == "2021"


def test_token_is_checked(tmp_path):
    with app_client(tmp_path, admin_token="s3cret") as client:
        wait_ready(client)
        assert client.post("/articles", json={"articles": [{"text": "x"}]}).status_code == 401
        ok = client.post(
            "/articles", json={"articles": [{"text": "Launch in 2031."}]}, headers={"Authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 201 and ok.json()["articles"] == 2


def test_loading_and_failed_loading_answer_503(tmp_path):
    s = Settings(index_dir=tmp_path / "index", seeds_dir=seeds(tmp_path))
    gate = threading.Event()

    class SlowPipeline(QAPipeline):
        def load_or_build(self, progress=False):
            gate.wait(10)
            raise RuntimeError("index is corrupt; rebuild it with: qa index --rebuild")

    with TestClient(create_app(s, SlowPipeline(s, FakeEmbedder(), FakeReader()))) as client:
        r = client.post("/ask", json={"question": "When?"})
        assert r.status_code == 503 and r.headers["retry-after"] and "loading" in r.json()["detail"]
        assert client.get("/healthz").json()["status"] == "loading"
        gate.set()
        for _ in range(100):
            if client.get("/healthz").json()["status"] == "error":
                break
            time.sleep(0.05)
        health = client.get("/healthz")
        assert health.status_code == 503 and "qa index --rebuild" in health.json()["detail"]
        assert "qa index --rebuild" in client.post("/ask", json={"question": "When?"}).json()["detail"]


def test_model_gate_bounds_concurrency_and_refuses_beyond_the_queue():
    async def main():
        gate = ModelGate(concurrent=1, queued=1, max_wait_s=60)
        release = threading.Event()
        running: list[str] = []
        results: list[str] = []

        def work(name):
            running.append(name)
            assert len(running) == 1, "two model calls ran at once"
            release.wait(5) if name == "first" else None
            running.remove(name)
            return name

        async def call(name):
            results.append(await gate.run(work, name))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "first")
            tg.start_soon(call, "second")
            for _ in range(500):
                if gate.inside == 2:
                    break
                await anyio.sleep(0.01)
            assert gate.inside == 2
            with pytest.raises(Busy):
                await gate.run(work, "third")  # one running, one queued: the third is refused
            release.set()
        assert results == ["first", "second"]
        assert await gate.run(work, "again") == "again"  # free again

    anyio.run(main)


def test_body_limit_applies_to_chunked_bodies_too(tmp_path):
    with app_client(tmp_path, max_body_bytes=1000) as client:
        wait_ready(client)
        json_type = {"content-type": "application/json"}
        assert client.post("/ask", content=b"x" * 1001, headers=json_type).status_code == 413
        r = client.post("/ask", content=iter([b"x" * 600, b"y" * 600]), headers=json_type)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        ok = client.post("/ask", content=iter([b'{"question": ', b'"When does it expire?"}']), headers=json_type)
        assert ok.status_code == 200 and ok.json()["answers"][0]["text"] == "2021"


def test_questions_are_refused_by_expected_wait_with_a_retry_after_from_the_service_time():
    async def main():
        gate = ModelGate(concurrent=1, queued=64, max_wait_s=3.0)
        gate.observe(2.0)  # a question holds the models 2 s
        for _ in range(STARTUP_ANSWERS):
            gate.observe_lateness(1.0, 1.0)  # and answers came when forecast
        release = threading.Event()

        async def blocked(name):
            return await gate.run(release.wait, 10, question=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked, "running")
            tg.start_soon(blocked, "waits 2 s")
            for _ in range(500):
                if gate.inside == 2:
                    break
                await anyio.sleep(0.01)
            assert gate.expected_wait_s() == pytest.approx(4.0)
            with pytest.raises(Busy) as refused:
                await gate.run(release.wait, 10, question=True)  # would wait 4 s > 3 s
            assert refused.value.retry_after_s == 4 and "would wait about 4 s" in str(refused.value)
            assert gate.inside == 2  # refused at once, never queued
            release.set()
        assert gate.expected_wait_s() == 0 and await gate.run(len, "ok", question=True) == 2

    anyio.run(main)


class FakeClock:
    """A clock that moves only when the work run through the gate says it took time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float, until: threading.Event | None = None) -> None:
        """Model work of `seconds`, begun once `until` is set."""
        if until is not None:
            assert until.wait(10)
        self.now += seconds


def test_answers_later_than_forecast_make_the_gate_forecast_later():
    async def main():
        clock = FakeClock()
        gate = ModelGate(concurrent=1, queued=8, max_wait_s=1.0, clock=clock)
        gate.observe(0.05)  # as measured so far: a question holds the models 50 ms
        assert gate.lateness == STARTUP_LATENESS  # no answers seen yet: assumed late

        async def ask(seconds, until=None):
            return await gate.run(clock.work, seconds, until, question=True)

        second_queued = threading.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, 0.4, second_queued)  # ... but this one holds them 400 ms
            while gate.inside < 1:
                await anyio.sleep(0.001)
            tg.start_soon(ask, 0.0)  # forecast: answered after (1 + 1) x 50 ms; answered after 400
            while gate.inside < 2:
                await anyio.sleep(0.001)
            second_queued.set()
        assert gate.lateness == pytest.approx(0.4 / 0.1)
        # The next forecast is scaled by it: with one question inside, a newcomer is refused,
        # as its answer would come after (0.4 + 0.4) s x lateness, over the 1 s wait plus the
        # median service time; it would have been let in on the service times alone.
        assert gate.service_s == pytest.approx(0.4) and gate.typical_service_s == 0.05
        checked = threading.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, 0.3, checked)
            while gate.inside < 1:
                await anyio.sleep(0.001)
            assert gate.service_s is not None and gate.typical_service_s is not None
            assert gate.expected_wait_s() == pytest.approx(gate.service_s * gate.lateness)
            with pytest.raises(Busy, match="would wait about"):
                await ask(0.0)
            assert 2 * gate.service_s < gate.max_wait_s + gate.typical_service_s
            checked.set()
        # Answers sooner than forecast never make the forecast shorter than the work.
        for _ in range(40):
            gate.observe_lateness(0.01, 1.0)
        assert gate.lateness == 1.0
        # A fresh gate assumes answers late until it has seen enough of them.
        fresh = ModelGate(concurrent=1, queued=8, max_wait_s=1.0)
        for _ in range(STARTUP_ANSWERS):
            assert fresh.lateness == STARTUP_LATENESS
            fresh.observe_lateness(0.5, 1.0)
        assert fresh.lateness == 1.0

    anyio.run(main)


def test_the_forecast_allows_for_one_question_as_slow_as_the_slowest_recent_one():
    async def main():
        gate = ModelGate(concurrent=1, queued=8, max_wait_s=0.5)
        for seconds in [0.05] * 9 + [1.0]:  # one slow question in the last ten
            gate.observe(seconds)
        assert gate.service_s == 0.05 and gate.longest_service_s == 1.0
        release = threading.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: gate.run(release.wait, 10, question=True))
            while gate.inside < 1:
                await anyio.sleep(0.001)
            # One ahead at 50 ms, then its own: 0.1 s at the 90th percentile, well within the
            # promise (0.5 + 0.05 s); but if either ran as the slow one did, 1.05 s: refused.
            with pytest.raises(Busy):
                await gate.run(len, "q", question=True)
            release.set()

    anyio.run(main)


def test_writes_are_never_refused_for_the_wait():
    async def main():
        gate = ModelGate(concurrent=1, queued=4, max_wait_s=0.1)
        gate.observe(5.0)
        release = threading.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: gate.run(release.wait, 10))
            while gate.inside < 1:
                await anyio.sleep(0.01)
            with pytest.raises(Busy):
                await gate.run(len, "q", question=True)
            tg.start_soon(lambda: gate.run(len, "a write"))  # queued behind, not refused
            while gate.inside < 2:
                await anyio.sleep(0.01)
            release.set()

    anyio.run(main)


def test_jsonl_upload_says_which_lines_were_skipped_and_why(tmp_path):
    lines = [
        {"id": "good1", "title": "One", "text": "The bridge opened in 2019."},
        {"id": True, "text": "An id that is not a string."},
        {"id": "..", "text": "An id that is a path segment."},
        "not json at all",
        {"id": "nourl", "text": "A script url.", "url": "javascript:alert(1)"},
        {"id": "good2", "title": "Two", "text": "The tunnel opened in 2020."},
    ]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode()
    with app_client(tmp_path, admin_token=TOKEN) as client:
        wait_ready(client)
        r = client.post("/articles/file", content=body, headers={**ADMIN, "content-type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["ids"] == ["good1", "good2"]
        assert [s.split(": skipped: ")[0] for s in out["skipped"]] == ["upload:2", "upload:3", "upload:4", "upload:5"]
        assert "must be a string" in out["skipped"][0] and "not . or .." in out["skipped"][1]
        assert "http" in out["skipped"][3]
        assert {a["id"] for a in client.get("/articles").json()["articles"]} >= {"good1", "good2"}


def test_invisible_questions_datetimes_timestamps_and_script_urls_are_refused(tmp_path):
    with app_client(tmp_path, admin_token=TOKEN) as client:
        wait_ready(client)
        for question in ["\x00\x00\x00", "\u200b\u200c\u200d\ufeff", " \x00 \u200b \n"]:
            r = client.post("/ask", json={"question": question})
            assert r.status_code == 422 and "empty" in r.json()["detail"], (question, r.text)
        for bad in ["2021-01-01T00:00:00", 1609459200, "1609459200", "20210101", "2021-1-1"]:
            r = client.post("/ask", json={"question": "When?", "filters": {"date_from": bad}})
            assert r.status_code == 422 and "date_from" in r.json()["detail"], (bad, r.text)
        ok = client.post("/ask", json={"question": "When does it expire?", "filters": {"date_from": "2000-01-01"}})
        assert ok.status_code == 200
        bad_date = client.post("/articles", json={"articles": [{"text": "t", "date": 1609459200}]}, headers=ADMIN)
        assert bad_date.status_code == 422 and "date" in bad_date.json()["detail"]
        r = client.post("/articles", json={"articles": [{"text": "t", "url": "javascript:alert(1)"}]}, headers=ADMIN)
        assert r.status_code == 422 and r.json()["detail"].startswith("articles[0]: url must start with http")


def test_stored_script_urls_are_not_served(tmp_path):
    s = Settings(index_dir=tmp_path / "index", seeds_dir=seeds(tmp_path), no_answer_threshold=0.5)
    pipeline = QAPipeline(s, FakeEmbedder(), FakeReader())
    with TestClient(create_app(s, pipeline)) as client:
        wait_ready(client)
        # As an index written before ingest refused such urls would hold it.
        pipeline.add_articles([Article("old", "Old", "Launched in 2011.", url="javascript:alert(1)")])
        assert client.get("/articles/old").json()["url"] is None
        assert all(a["url"] is None for a in client.get("/articles").json()["articles"])


def test_wrong_tokens_are_throttled_per_client_address_and_the_right_token_is_never_refused(tmp_path):
    s = Settings(
        index_dir=tmp_path / "index",
        seeds_dir=seeds(tmp_path),
        no_answer_threshold=0.5,
        admin_token=TOKEN,
        max_auth_failures_per_minute=3,
    )
    app = create_app(s, QAPipeline(s, FakeEmbedder(), FakeReader()))
    for middleware in app.user_middleware:  # a 3 s window, so that a held 429 comes in the test's time
        if middleware.cls is AdminOnly:
            middleware.kwargs["window_s"] = 3.0
    add = {"articles": [{"text": "Launch in 2031."}]}
    with TestClient(app, client=("10.0.0.1", 5000)) as attacker, TestClient(app, client=("10.0.0.2", 5000)) as admin:
        wait_ready(attacker)
        for n in range(3):
            assert (
                attacker.post("/articles", json=add, headers={"Authorization": f"Bearer guess{n}"}).status_code == 401
            )
        started = time.monotonic()
        throttled = attacker.post("/articles", json=add, headers={"Authorization": "Bearer guess3"})
        assert throttled.status_code == 429 and 1 <= int(throttled.headers["retry-after"]) <= 3
        assert time.monotonic() - started > 1, "a throttled guess is answered only when the window frees"
        # The right token is accepted even from the throttled address: nobody can lock the admin out ...
        assert attacker.post("/articles", json=add, headers=ADMIN).status_code == 201
        # ... and other addresses are not affected; reading needs no token at all.
        assert admin.post("/articles", json=add, headers=ADMIN).status_code == 201
        assert attacker.get("/articles").status_code == 200


def test_the_throttle_forgets_failures_older_than_its_window():
    now = [1000.0]
    throttle = FailureThrottle(limit=2, window_s=60, clock=lambda: now[0])
    throttle.failed("a")
    now[0] += 30
    throttle.failed("a")
    assert throttle.wait_s("a") == pytest.approx(30) and throttle.wait_s("b") == 0
    now[0] += 31
    assert throttle.wait_s("a") == 0  # the first failure left the window
    throttle.failed("a")
    assert throttle.wait_s("a") == pytest.approx(29)


def test_a_short_token_is_warned_about_at_start(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="qa.serve.app"):
        create_app(Settings(index_dir=tmp_path / "index", admin_token="s3cret"))
    assert "QA_ADMIN_TOKEN has 6 characters" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qa.serve.app"):
        create_app(Settings(index_dir=tmp_path / "index", admin_token=TOKEN))
    assert "QA_ADMIN_TOKEN" not in caplog.text


def test_another_process_writing_is_followed_and_a_write_it_blocks_is_409(tmp_path):
    import fcntl

    with app_client(tmp_path, admin_token=TOKEN, write_lock_timeout_s=0.3) as client:
        wait_ready(client)
        # Another process (qa ingest) writes the same index behind the server's back: the server
        # sees it, and its own writes go on top of it.
        s = Settings(index_dir=tmp_path / "index", seeds_dir=tmp_path / "seeds", no_answer_threshold=0.5)
        other = QAPipeline(s, FakeEmbedder(), FakeReader())
        other.load()
        other.add_articles([Article("other", "Other", "Written in 2040 by another process.")])
        assert client.get("/articles/other").status_code == 200
        r = client.post("/articles", json={"articles": [{"id": "mine", "text": "Launch in 2031."}]}, headers=ADMIN)
        assert r.status_code == 201, r.text
        # While another process holds the index for writing, a write answers 409 saying who.
        with open(tmp_path / "index" / "LOCK", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write("pid 777 (qa ingest)")
            fh.flush()
            r = client.post("/articles", json={"articles": [{"text": "Launch in 2032."}]}, headers=ADMIN)
            assert r.status_code == 409, r.text
            assert "pid 777 (qa ingest)" in r.json()["detail"]
            assert client.delete("/articles/mine", headers=ADMIN).status_code == 409
        assert client.delete("/articles/mine", headers=ADMIN).status_code == 204


def test_admin_routes_fail_closed_when_the_admin_middleware_is_missing(tmp_path):
    from fastapi import FastAPI

    from qa.serve.deps import AppState
    from qa.serve.routers import articles

    app = FastAPI()
    app.state.qa = AppState(Settings(index_dir=tmp_path / "index", admin_token=TOKEN))
    app.include_router(articles.router)  # no AdminOnly middleware in front
    with TestClient(app) as client:
        r = client.post("/articles", json={"articles": [{"text": "x"}]}, headers=ADMIN)
        assert r.status_code == 401


def test_user_errors_share_one_base():
    from qa.errors import QAError
    from qa.eval.gold import GoldFormatError
    from qa.eval.squad import SquadFormatError
    from qa.index.store import IndexConflictError
    from qa.ingest.chunking import ChunkingError
    from qa.ingest.files import ArticleTooLargeError
    from qa.loading import ModelNotFoundError
    from qa.pipeline import ArticleNotFoundError, QuestionError
    from qa.retrieval.hybrid import FilterError

    for cls in (
        GoldFormatError,
        SquadFormatError,
        IndexConflictError,
        ChunkingError,
        ArticleTooLargeError,
        ModelNotFoundError,
        ArticleNotFoundError,
        QuestionError,
        FilterError,
    ):
        assert issubclass(cls, QAError), cls
    assert issubclass(QuestionError, ValueError) and issubclass(
        ArticleNotFoundError, KeyError
    )  # old catches still work


def three_dated_articles(tmp_path):
    d = tmp_path / "seeds3"
    d.mkdir()
    for name, year in (("a", 2021), ("b", 2026), ("c", 2031)):
        (d / f"{name}.txt").write_text(f"Treaty news {name}\nThe treaty is set to expire in {year}, officials said.")
    return d


def test_qa_top_k_is_the_default_number_of_answers_for_ask(tmp_path):
    s = Settings(
        index_dir=tmp_path / "index", seeds_dir=three_dated_articles(tmp_path), no_answer_threshold=0.01, top_k=2
    )
    with TestClient(create_app(s, QAPipeline(s, FakeEmbedder(), FakeReader()))) as client:
        wait_ready(client)
        question = "When did the treaty expire?"
        assert len(client.post("/ask", json={"question": question}).json()["answers"]) == 2
        assert len(client.post("/ask", json={"question": question, "top_k": 1}).json()["answers"]) == 1
        assert len(client.post("/ask", json={"question": question, "top_k": 3}).json()["answers"]) == 3
