"""API behaviour that needs no real model: auth modes, loading state, the busy gate."""

import threading
import time

import anyio
import pytest
from fastapi.testclient import TestClient

from qa.serve.app import create_app
from qa.config import Settings
from qa.serve.guards import Busy, ModelGate
from qa.pipeline import QAPipeline

from tests.fakes import FakeEmbedder, FakeReader


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
        ok = client.post("/articles", json={"articles": [{"text": "Launch in 2031."}]}, headers={"Authorization": "Bearer s3cret"})
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
        gate = ModelGate(concurrent=1, queued=1)
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
