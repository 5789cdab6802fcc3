"""`qa ingest --ray` and `qa serve --ray` on a real local Ray cluster (2 CPUs), started once for
this module; the commands run as the user runs them, in their own processes.

Needs the cluster extra (`pip install -e '.[cluster]'`); without it the module is skipped, and with
QA_REQUIRE_RAY=1 (as in CI) it fails instead.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

if os.environ.get("QA_REQUIRE_RAY") == "1":
    import ray  # noqa: F401  (an ImportError fails the run: CI must run these tests)
ray = pytest.importorskip("ray", reason="Ray is not installed: the cluster tests need pip install -e '.[cluster]'")

from qa.cluster import ClusterError  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.ingest.files import ingest_paths  # noqa: E402
from qa.pipeline import QAPipeline  # noqa: E402
from tests.index_state import index_state  # noqa: E402
from tests.servers import ROOT, TEST_OUTPUT, start_server_process  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.real_models]

SEED_JSONL = ROOT / "seeds" / "articles" / "wikinews.jsonl"
QUESTIONS = [
    "Where does Nick Bos work?",
    "Who is the president of the International Brotherhood of Magicians?",
    "Who founded wikiHow?",
]
NEW_ARTICLE = {
    "title": "Launch",
    "date": "2024-03-01",
    "text": "The Zorblax rocket lifted off at 9:02 from Kourou on Tuesday, carrying two weather satellites.",
}
NEW_QUESTION = "When did the Zorblax rocket lift off?"
TOKEN = "cluster-test-admin-token"
REPLICA_HEADER = "X-QA-Replica"  # as documented (docs/scale-out.md)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray cluster for the module: 2 CPUs, so two workers or two replicas. Its workers
    inherit this environment: PYTHONPATH makes them import this checkout's `qa`."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old


class Corpus:
    """A base index of 2 seed articles, 12 more to ingest, and the index a single-process
    ingest makes of them: what `--ray` must reproduce."""

    def __init__(self, root: Path) -> None:
        lines = SEED_JSONL.read_text(encoding="utf-8").splitlines()
        self.new = root / "new.jsonl"
        self.new.write_text("\n".join(lines[:12]) + "\n", encoding="utf-8")
        self.base = base = root / "base.jsonl"
        base.write_text("\n".join(lines[12:14]) + "\n", encoding="utf-8")
        self.base_index = root / "base-index"
        base_pipeline = QAPipeline(Settings(index_dir=self.base_index))
        base_pipeline.build([base])
        self.reference = _loaded(self.copy_base(root / "reference-index"))
        self.reference.add_articles(ingest_paths([self.new], self.reference.settings.max_article_chars).articles)
        self.passages = self.reference.counts().passages - base_pipeline.counts().passages

    def copy_base(self, target: Path) -> Path:
        shutil.copytree(self.base_index, target)
        return target


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("cluster-corpus"))


def _loaded(index_dir: Path) -> QAPipeline:
    pipeline = QAPipeline(Settings(index_dir=index_dir))
    pipeline.load()
    return pipeline


def _answers(pipeline: QAPipeline, question: str) -> list[tuple]:
    return [(a.text, a.article.id, a.start, a.end, round(a.score, 3)) for a in pipeline.ask(question).answers]


def assert_same_index(pipeline: QAPipeline, reference: QAPipeline) -> None:
    got, want = index_state(pipeline), index_state(reference)
    assert got.articles == want.articles
    # The same passages under the same ids: committed in the same groups, in the same order.
    assert [(c.id, c.article_id, c.start, c.end) for c in got.passages] == [
        (c.id, c.article_id, c.start, c.end) for c in want.passages
    ]
    assert got.vectors.keys() == want.vectors.keys()
    keys = list(want.vectors)
    diff = np.abs(np.array([got.vectors[k] for k in keys]) - np.array([want.vectors[k] for k in keys])).max()
    assert diff < 1e-5
    for question in QUESTIONS:
        expected = _answers(reference, question)
        assert expected and _answers(pipeline, question) == expected, question


def test_vectors_are_cut_into_commit_groups_and_a_wrong_count_commits_nothing_more() -> None:
    from qa.cluster.embed_job import recut  # here: importing Ray Data and Serve at collection slows every run

    def blocks() -> Iterator[np.ndarray]:
        return iter([np.full((3, 2), 1.0), np.full((2, 2), 2.0), np.full((4, 2), 3.0)])

    pieces = list(recut(blocks(), [0, 4, 5], dim=2))
    assert [len(p) for p in pieces] == [0, 4, 5]
    assert np.concatenate(pieces)[:, 0].tolist() == [1, 1, 1, 2, 2, 3, 3, 3, 3]
    with pytest.raises(ClusterError, match="where 6 were due"):
        list(recut(blocks(), [4, 6], dim=2))
    with pytest.raises(ClusterError, match="more vectors"):
        list(recut(blocks(), [4, 4], dim=2))


def _actors(class_part: str) -> dict[str, dict]:
    """Actors whose class name contains `class_part`, by actor id (Ray's GCS view: Pid, State,
    NumRestarts; the public state API needs the dashboard, which is off here)."""
    from ray._private import state

    return {a["ActorID"]: a for a in state.actors().values() if class_part in a["ActorClassName"]}


def test_ray_ingest_with_a_worker_killed_mid_job_makes_the_single_process_index(
    ray_address: str, corpus: Corpus, tmp_path: Path
) -> None:
    """One real `qa ingest --ray` run (the cluster's start-up is the slow part, so one run checks
    both): a worker is killed while passages are still to do, Ray restarts it and runs its batch
    again, and the index is the one a single-process ingest makes: nothing lost, nothing twice."""
    index_dir = corpus.copy_base(tmp_path / "index")
    TEST_OUTPUT.mkdir(exist_ok=True)
    log = TEST_OUTPUT / f"ray-ingest-{time.time_ns()}.log"
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "qa.cli", "ingest", str(corpus.new), "--ray", ray_address]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            killed, deadline = None, time.monotonic() + 300
            while killed is None and proc.poll() is None and time.monotonic() < deadline:
                alive = [a for a in _actors("EmbedPassages").values() if a["State"] == "ALIVE" and a["Pid"]]
                if alive:  # a worker is ALIVE once its model is loaded, and is sent a batch at once
                    time.sleep(0.5)
                    done = re.findall(rf"(\d+)/{corpus.passages} \[", log.read_text(errors="replace"))
                    if proc.poll() is None and (int(done[-1]) if done else 0) < corpus.passages:
                        os.kill(alive[0]["Pid"], signal.SIGKILL)
                        killed = alive[0]["ActorID"]
                time.sleep(0.1)
            assert killed is not None, f"no worker was killed mid-job (exit {proc.poll()}):\n{log.read_text()[-3000:]}"
            assert proc.wait(300) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log.read_text(errors="replace")
    assert "index now holds 14 articles" in output
    assert "embedding on 2 Ray workers: 100%" in output and f"{corpus.passages}/{corpus.passages}" in output
    assert _actors("EmbedPassages")[killed]["NumRestarts"] >= 1  # Ray brought the killed worker back
    assert_same_index(_loaded(index_dir), corpus.reference)


def test_ray_ingest_embeds_with_the_passage_embedder_the_index_records(
    ray_address: str, corpus: Corpus, tmp_path: Path
) -> None:
    """QA_PASSAGE_EMBEDDER=onnx-int8: the Ray workers embed in int8 as a single-process ingest does,
    though their batches hold other passages (32 against 16): the ONNX copy embeds one passage a
    call, so a passage's int8 vector does not depend on its neighbours (dynamic quantisation
    scales a call's activations by their own range)."""
    settings = Settings(index_dir=tmp_path / "int8", passage_embedder="onnx-int8")
    QAPipeline(settings).build([corpus.base])
    reference = QAPipeline(settings.model_copy(update={"index_dir": tmp_path / "int8-reference"}))
    shutil.copytree(settings.index_dir, reference.settings.index_dir)
    reference.load()
    reference.add_articles(ingest_paths([corpus.new], settings.max_article_chars).articles)
    env = {**os.environ, "QA_INDEX_DIR": str(settings.index_dir), "QA_PASSAGE_EMBEDDER": "onnx-int8"}
    command = [sys.executable, "-m", "qa.cli", "ingest", str(corpus.new), "--ray", ray_address]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    pipeline = QAPipeline(settings)
    pipeline.load()
    assert pipeline.spec.embedder.endswith("+onnx-int8")
    assert_same_index(pipeline, reference)


def test_serve_refuses_more_replicas_than_the_index_node_has_cpus(ray_address: str, corpus: Corpus) -> None:
    """The replicas go where the index is (this node, 2 CPUs): a third is refused before Serve starts."""
    env = {**os.environ, "QA_INDEX_DIR": str(corpus.reference.settings.index_dir)}
    command = [sys.executable, "-m", "qa.cli", "serve", "--ray", ray_address, "--replicas", "3"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "3 replicas of 1 CPU(s) need 3 CPUs on the node that holds the index; Ray gives this node 2" in done.stderr
    assert all(a["State"] == "DEAD" for a in _actors("ServeController").values())  # Serve was not started


def _ask(client: httpx.Client, question: str) -> tuple[str, dict]:
    r = client.post("/ask", json={"question": question})
    assert r.status_code == 200, r.text
    return r.headers[REPLICA_HEADER], r.json()


def _until_both_replicas(client: httpx.Client, question: str, check: Callable[[dict], None], tries: int = 30) -> None:
    """Ask until each of the two replicas has answered; every answer must pass `check`."""
    seen = set()
    for _ in range(tries):
        replica, body = _ask(client, question)
        check(body)
        seen.add(replica)
        if len(seen) == 2:
            return
    pytest.fail(f"only replicas {seen} answered {question!r} in {tries} tries")


def test_serve_replicas_answer_like_one_process_follow_writes_and_share_the_write_lock(
    ray_address: str, corpus: Corpus, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(corpus.reference.settings.index_dir, index_dir)
    server = start_server_process(
        index_dir,
        TOKEN,
        {"QA_WRITE_LOCK_TIMEOUT_S": "1"},
        name="ray-serve",
        args=["--ray", ray_address, "--replicas", "2"],
    )
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            ready: set[str] = set()
            deadline = time.monotonic() + 300
            while len(ready) < 2 and time.monotonic() < deadline:  # one replica may still be loading
                r = client.get("/healthz")
                if r.status_code == 200:
                    ready.add(r.headers[REPLICA_HEADER])
                time.sleep(0.2)
            assert len(ready) == 2, "the two replicas never both reported ready"
            assert '<form id="ask-form"' in client.get("/").text
            assert "swagger" in client.get("/docs").text.lower()

            for question in QUESTIONS:
                want = [[a.text, a.article.id, a.start, a.end] for a in corpus.reference.ask(question).answers]
                _until_both_replicas(client, question, functools.partial(_same_answers, want=want))

            auth = {"Authorization": f"Bearer {TOKEN}"}
            added = client.post("/articles", headers=auth, json={"articles": [NEW_ARTICLE]})
            assert added.status_code == 201, added.text
            # Whichever replica took the write, both answer from it at once.
            _until_both_replicas(client, NEW_QUESTION, lambda body: _best_is(body, "9:02"))

            # Another process holding the index's write lock: a write through a replica waits
            # QA_WRITE_LOCK_TIMEOUT_S, then answers 409 naming the holder; nothing is changed.
            with open(index_dir / "LOCK", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                lock.write("pid 1 (the cluster test)")
                lock.flush()
                blocked = client.delete(f"/articles/{added.json()['ids'][0]}", headers=auth)
                lock.truncate(0)
            assert blocked.status_code == 409 and "the cluster test" in blocked.json()["detail"], blocked.text

            assert client.delete(f"/articles/{added.json()['ids'][0]}", headers=auth).status_code == 204
            _until_both_replicas(client, NEW_QUESTION, lambda body: _not_among(body, "9:02"))
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, server.tail()
        assert not _actors("QAReplica") or all(a["State"] == "DEAD" for a in _actors("QAReplica").values())
    finally:
        server.stop()
    assert index_state(_loaded(index_dir)).articles == index_state(corpus.reference).articles


def _same_answers(body: dict, want: list[list]) -> None:
    assert [[a["text"], a["article"]["id"], a["start"], a["end"]] for a in body["answers"]] == want


def _best_is(body: dict, text: str) -> None:
    assert body["answers"] and body["answers"][0]["text"] == text, json.dumps(body)[:500]


def _not_among(body: dict, text: str) -> None:
    assert all(a["text"] != text for a in body["answers"]), json.dumps(body)[:500]
