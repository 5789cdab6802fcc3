"""Crash safety: a process killed while it adds articles leaves an index that loads, holding
the state from before or after the addition, never a mix."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from qa.config import Settings
from qa.pipeline import QAPipeline
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader
from tests.index_state import index_state

CHILD = textwrap.dedent(
    """
    import os, sys
    from qa.config import Settings
    from qa.index import db, dense
    from qa.pipeline import QAPipeline
    from qa.types import Article
    from tests.fakes import FakeEmbedder, FakeReader

    crash_at = sys.argv[2]
    if crash_at == "inside-the-transaction":
        real_finish = db.finish_write
        def dying_finish(conn):
            real_finish(conn)
            os._exit(9)  # killed with every row written but the transaction not committed
        db.finish_write = dying_finish
    elif crash_at == "before-the-dense-checkpoint":
        def dying_checkpoint(self, conn):
            os._exit(9)  # committed; FAISS's file not yet written: the next process replays the log
        dense.DenseIndex.checkpoint = dying_checkpoint
    elif crash_at == "mid-checkpoint":
        real_replace = os.replace
        def dying_replace(src, dst):
            if str(dst).endswith("dense.json"):
                os._exit(9)  # the new FAISS file written, its pointer not yet swapped
            real_replace(src, dst)
        os.replace = dying_replace
    settings = Settings(index_dir=sys.argv[1], chunk_size=200, chunk_overlap=50, no_answer_threshold=0.5,
                        dense_checkpoint_every=1)
    p = QAPipeline(settings, FakeEmbedder(), FakeReader())
    p.load()
    p.add_articles([Article(f"new{i}", f"New {i}", f"Fresh article number {i} from 2030.") for i in range(5)])
    """
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_pipeline(tmp_path):
    settings = Settings(index_dir=tmp_path / "index", chunk_size=200, chunk_overlap=50, no_answer_threshold=0.5)
    p = QAPipeline(settings, FakeEmbedder(), FakeReader())
    p.build_from_articles([Article("old", "Old", "New Start is set to expire in 2021.")])
    return p


NEW = {"old", "new0", "new1", "new2", "new3", "new4"}


@pytest.mark.parametrize(
    "crash_at,expected",
    [
        ("inside-the-transaction", {"old"}),
        ("before-the-dense-checkpoint", NEW),
        ("mid-checkpoint", NEW),
    ],
)
def test_killed_mid_write_loads_before_or_after(tmp_path, crash_at, expected):
    p = base_pipeline(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(p.settings.index_dir), crash_at],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr
    reloaded = QAPipeline(p.settings, FakeEmbedder(), FakeReader())
    reloaded.load()
    assert {a.id for a in reloaded.articles()[0]} == expected
    assert reloaded.ask("When does New Start expire?").answers[0].text == "2021"
    reference = QAPipeline(
        Settings(index_dir=tmp_path / "ref", chunk_size=200, chunk_overlap=50), FakeEmbedder(), FakeReader()
    )
    reference.build_from_articles([a for a in reloaded.articles()[0]])
    assert index_state(reloaded) == index_state(reference)
    # the FAISS index (replayed from the log where its checkpoint lagged) agrees with the database
    assert_same_answers(reloaded, reference, ["Fresh article number 3", "New Start expire"])


def assert_same_answers(index: QAPipeline, reference: QAPipeline, queries: list[str]) -> None:
    """Dense: the same scores in the same order; the same passages, except that equal scores may
    come in another order (an index's insertion history orders its ties) and a tie at the cut may
    differ. Lexical: the same passages match, none lost, none left over from a deleted article.
    (BM25 scores are not compared: tantivy, like Lucene, counts deleted passages in its document
    frequencies until their segment is merged away, so scores drift slightly with the history.)"""
    for query in queries:
        got = [(round(h.score, 5), h.chunk.article_id, h.chunk.start) for h in index.search(query, 10, mode="dense")]
        want = [
            (round(h.score, 5), h.chunk.article_id, h.chunk.start) for h in reference.search(query, 10, mode="dense")
        ]
        assert [g[0] for g in got] == [w[0] for w in want], query
        cut = got[-1][0] if got else None
        assert {g for g in got if g[0] != cut} == {w for w in want if w[0] != cut}, query
        matched = {(h.chunk.article_id, h.chunk.start, h.chunk.text) for h in index.search(query, 10_000, mode="bm25")}
        expected = {
            (h.chunk.article_id, h.chunk.start, h.chunk.text) for h in reference.search(query, 10_000, mode="bm25")
        }
        assert matched == expected, query


RANDOM_CHILD = textwrap.dedent(
    """
    import json, sys
    from qa.config import Settings
    from qa.pipeline import ArticleNotFoundError, QAPipeline
    from qa.types import Article
    from tests.fakes import FakeEmbedder, FakeReader

    index_dir, ops_file, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ops = json.load(open(ops_file))
    settings = Settings(index_dir=index_dir, chunk_size=200, chunk_overlap=50, dense_checkpoint_every=7)
    p = QAPipeline(settings, FakeEmbedder(), FakeReader())
    p.load()
    print("ready", flush=True)
    for i in range(start, len(ops)):
        op = ops[i]
        if op[0] == "add":
            p.add_articles([Article(op[1], op[2], op[3])])
        else:
            try:
                p.delete_article(op[1])
            except ArticleNotFoundError:
                pass
        print(i, flush=True)
    """
)


def _apply(model: dict, op: list) -> dict:
    model = dict(model)
    if op[0] == "add":
        model[op[1]] = (op[2], op[3])
    else:
        model.pop(op[1], None)
    return model


def test_a_thousand_writes_with_crashes_between_and_inside_them_end_as_a_fresh_build(tmp_path):
    rng = random.Random(2024)
    words = "treaty missile iran sochi oil tanker election ukraine summit minister apple airbus market price".split()
    ops = []
    for n in range(1000):
        aid = f"a{rng.randrange(60)}"
        if rng.random() < 0.35:
            ops.append(["del", aid])
        else:
            text = " ".join(
                " ".join(rng.choices(words, k=rng.randint(5, 30))) + f" {1900 + n}." for _ in range(rng.randint(1, 4))
            )
            ops.append(["add", aid, f"Title {n}", text])
    ops_file = tmp_path / "ops.json"
    ops_file.write_text(json.dumps(ops))
    settings = Settings(index_dir=tmp_path / "index", chunk_size=200, chunk_overlap=50, dense_checkpoint_every=7)
    QAPipeline(settings, FakeEmbedder(), FakeReader()).build_from_articles([])
    model: dict = {}
    done, crashes = 0, 0
    while done < len(ops):
        child = subprocess.Popen(
            [sys.executable, "-c", RANDOM_CHILD, str(settings.index_dir), str(ops_file), str(done)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.01, 0.25))
        child.kill()
        # Read on through the buffered reader that read "ready": it may already hold the next
        # lines, which communicate() (reading the pipe itself) would never see.
        out = child.stdout.read().split()
        child.wait(60)
        finished = int(out[-1]) + 1 if out else done
        for i in range(done, finished):
            model = _apply(model, ops[i])
        done = finished
        if child.returncode != 0 and done < len(ops):
            crashes += 1
            # The op in flight when it was killed is either wholly there or wholly absent.
            state = {a.id: (a.title, a.text) for a in QAPipeline(settings, FakeEmbedder(), FakeReader()).articles()[0]}
            after = _apply(model, ops[done])
            assert state in (model, after), f"op {done} left a mixed state"
            if state == after and state != model:
                model, done = after, done + 1
    assert crashes >= 10
    survivor = QAPipeline(settings, FakeEmbedder(), FakeReader())
    survivor.load()
    reference = QAPipeline(
        Settings(index_dir=tmp_path / "ref", chunk_size=200, chunk_overlap=50), FakeEmbedder(), FakeReader()
    )
    reference.build_from_articles([Article(aid, title, text) for aid, (title, text) in model.items()])
    assert index_state(survivor) == index_state(reference)
    assert_same_answers(
        survivor, reference, ["treaty with iran", "oil tanker price", "apple airbus market", "sochi summit 1950"]
    )


def _upload_in_background(url: str, token: str, articles: list[dict]) -> threading.Thread:
    def post():
        try:
            httpx.post(
                f"{url}/articles",
                json={"articles": articles},
                headers={"Authorization": f"Bearer {token}"},
                timeout=600,
            )
        except httpx.HTTPError:
            pass  # the server is killed under it

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


@pytest.mark.server
@pytest.mark.real_models
@pytest.mark.parametrize("moment", ["while embedding", "while committing"])
def test_sigkill_during_an_upload_then_restart(tmp_path, seed_index, start_server, moment):
    index_dir = seed_index.copy_to(tmp_path / "index")
    token = "crash-test-token"
    articles = [
        {"id": f"bulk{i}", "title": f"Bulk {i}", "text": f"Filler article {i} about the harbour. " * 80}
        for i in range(30)
    ]
    server = start_server(index_dir, token)
    before = httpx.get(f"{server.url}/articles").json()["total"]
    upload = _upload_in_background(server.url, token, articles)
    if moment == "while embedding":
        time.sleep(1.0)
    else:  # the moment the write-ahead log starts to grow: the transaction is being written
        wal = next(index_dir.glob("g*/store.sqlite-wal"))
        size = wal.stat().st_size
        deadline = time.monotonic() + 300
        while wal.stat().st_size == size and upload.is_alive() and time.monotonic() < deadline:
            time.sleep(0.0005)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    upload.join(30)

    restarted = start_server(index_dir, token)
    after = httpx.get(f"{restarted.url}/articles").json()["total"]
    assert after in (before, before + len(articles)), (before, after)
    answer = httpx.post(f"{restarted.url}/ask", json={"question": "When does New START expire?"}, timeout=60).json()
    assert answer["answers"][0]["text"] == "2021"
