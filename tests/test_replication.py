"""Replicas on other hosts (qa/index/replication.py): the writer publishes into a folder, a replica
pulls, verifies and swaps; deltas after the first copy; damaged or partial copies are refused and
the old generation keeps serving; the change log is pruned below what anything still needs."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qa.config import Settings
from qa.index import db, replication
from qa.index.replication import ReplicationError, SnapshotCorruptError, SnapshotNotFoundError
from qa.index.store import IndexReadOnlyError
from qa.pipeline import QAPipeline
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader
from tests.index_state import index_state

ROOT = Path(__file__).resolve().parent.parent

ARTICLES = [
    Article("a1", "Treaty", "New Start is set to expire in 2021. It limits missiles.", "2019-05-14", "Times"),
    Article("a2", "Planes", "The A380 first flew in 2005. Airbus built it in Toulouse.", "2005-04-27", "Wikinews"),
    Article("a3", "Apple", "Apple released Tiger in 2005. Steve Jobs presented it.", "2005-05-07", "Wikinews"),
]
LAUNCH = Article("new1", "Launch", "The Zorblax rocket lifted off from Kourou in 2031.", "2031-03-01", "Wire")


def make(path: Path, **overrides) -> QAPipeline:
    settings = Settings(index_dir=path, chunk_size=200, chunk_overlap=50, no_answer_threshold=0.5, **overrides)
    return QAPipeline(settings, embedder=FakeEmbedder(), reader=FakeReader())


def answer(p: QAPipeline, question: str) -> str | None:
    result = p.ask(question)
    return None if result.no_answer else result.answers[0].text


@pytest.fixture
def writer(tmp_path):
    p = make(tmp_path / "writer")
    p.build_from_articles(ARTICLES)
    return p


def test_a_whole_copy_is_published_pulled_verified_and_served(writer, tmp_path):
    shipped = tmp_path / "shipped"
    done = replication.publish(writer.store, shipped)
    assert done.kind == "full" and done.bytes > 0
    manifest = json.loads(next(shipped.glob("full-*/manifest.json")).read_text())
    assert {"store.sqlite", "dense.json", "lexical.json"} <= set(manifest["files"])
    assert any(name.startswith("lexical/") for name in manifest["files"])
    pulled = replication.pull(shipped, tmp_path / "replica")
    assert (pulled.kind, pulled.seq) == ("full", done.seq)
    replica = make(tmp_path / "replica")
    replica.load()
    assert index_state(replica) == index_state(writer)
    assert answer(replica, "When does New Start expire?") == "2021"
    assert replica.search("Toulouse Airbus", 3, mode="bm25")[0].chunk.article_id == "a2"
    state = replication.replica_state(tmp_path / "replica")
    assert state is not None and state.seq == done.seq and state.lag_s() < 60
    assert replication.replicas(shipped)  # the replica recorded its seq for the publisher's side


def test_later_writes_ship_as_deltas_that_a_running_replica_server_follows(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    server = make(root)  # a process serving the replica, opened before the next pulls
    server.load()
    assert answer(server, "When did the Zorblax rocket lift off?") != "2031"

    writer.add_articles([LAUNCH])
    done = replication.publish(writer.store, shipped)
    assert done.kind == "delta"
    assert done.bytes < replication.read_latest(shipped)["full"]["bytes"]
    pulled = replication.pull(shipped, root)
    assert (pulled.kind, pulled.seq) == ("delta", done.seq)
    assert answer(server, "When did the Zorblax rocket lift off?") == "2031"
    assert server.search("Zorblax Kourou", 3, mode="bm25")[0].chunk.article_id == "new1"

    writer.delete_article("a1")
    writer.add_articles([Article("a2", "Planes", "The A380 was retired by Air France in 2020.", "2020-01-01")])
    assert replication.publish(writer.store, shipped).kind == "delta"
    assert replication.pull(shipped, root).kind == "delta"
    assert index_state(server) == index_state(writer)
    assert answer(server, "When does New Start expire?") != "2021"
    assert replication.publish(writer.store, shipped).kind == "unchanged"
    assert replication.pull(shipped, root).kind == "unchanged"


def test_a_rebuilt_writer_ships_a_whole_copy_that_running_servers_reopen(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    server = make(root)
    server.load()
    writer.build_from_articles([LAUNCH])  # a new generation on the writer
    assert replication.publish(writer.store, shipped).kind == "full"
    assert replication.pull(shipped, root).kind == "full"
    assert answer(server, "When did the Zorblax rocket lift off?") == "2031"
    assert server.counts().articles == 1


def new_generation_published(writer: QAPipeline, tmp_path: Path) -> tuple[Path, Path, str]:
    """A replica pulled from the writer, then a new generation built and published on the writer
    but not yet pulled: the publish folder, the replica's index folder, its CURRENT."""
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    before = (root / "CURRENT").read_text()
    writer.build_from_articles([LAUNCH])
    replication.publish(writer.store, shipped)
    return shipped, root, before


def damage(path: Path) -> None:
    """Flip one byte in the middle of a published file, as a bad disk or transfer would."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_file_is_refused_and_the_old_generation_keeps_serving(writer, tmp_path):
    shipped, root, before = new_generation_published(writer, tmp_path)
    newest = shipped / replication.read_latest(shipped)["full"]["folder"]
    damage(next(newest.glob("dense-*.faiss")))
    with pytest.raises(SnapshotCorruptError, match="differs from its manifest.*keeps serving"):
        replication.pull(shipped, root)
    assert (root / "CURRENT").read_text() == before
    assert not list(root.glob(".tmp-*"))
    server = make(root)
    server.load()
    assert answer(server, "When does New Start expire?") == "2021"


def test_a_file_cut_short_or_missing_is_refused(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    database = next(shipped.glob("full-*/store.sqlite"))
    with open(database, "r+b") as fh:
        fh.truncate(database.stat().st_size // 2)
    with pytest.raises(SnapshotCorruptError, match="cut short"):
        replication.pull(shipped, root)
    assert not (root / "CURRENT").exists()
    database.unlink()
    with pytest.raises(SnapshotCorruptError, match="missing"):
        replication.pull(shipped, root)


def test_a_damaged_delta_is_refused_and_the_copy_stays_as_it_was(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    writer.add_articles([LAUNCH])
    replication.publish(writer.store, shipped)
    delta = next(shipped.glob("delta-*.sqlite"))
    delta.write_bytes(delta.read_bytes()[:-100])
    with pytest.raises(SnapshotCorruptError, match="differs from its digest"):
        replication.pull(shipped, root)
    server = make(root)
    server.load()
    assert server.counts().articles == 3
    assert answer(server, "When did the Zorblax rocket lift off?") != "2031"


PULL_KILLED = textwrap.dedent(
    """
    import os, sys
    from qa.index import replication
    real = replication._copy_hashed
    copied = []
    def dying_copy(src, dst, bar=None):
        copied.append(src)
        if len(copied) == 3:
            os._exit(9)  # killed mid-transfer: two files copied, the third not
        return real(src, dst, bar)
    replication._copy_hashed = dying_copy
    replication.pull(sys.argv[1], sys.argv[2])
    """
)


def test_a_pull_killed_mid_transfer_leaves_the_old_generation_serving(writer, tmp_path):
    shipped, root, before = new_generation_published(writer, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", PULL_KILLED, str(shipped), str(root)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 9, proc.stderr
    assert (root / "CURRENT").read_text() == before
    assert list(root.glob(".tmp-*"))  # the partial copy, never made current
    server = make(root)
    server.load()
    assert answer(server, "When does New Start expire?") == "2021"
    assert replication.pull(shipped, root).kind == "full"  # the next pull cleans up and completes
    assert not list(root.glob(".tmp-*"))
    assert answer(server, "When did the Zorblax rocket lift off?") == "2031"


PUBLISH_KILLED = textwrap.dedent(
    """
    import os, sys
    from qa.config import Settings
    from qa.index import replication
    from qa.pipeline import QAPipeline
    from tests.fakes import FakeEmbedder, FakeReader
    def dying_write(path, value):
        if path.name == "LATEST.json":
            os._exit(9)  # the whole copy written, LATEST.json not yet replaced
        raise AssertionError(path)
    real = replication._write_json
    replication._write_json = lambda path, value: (dying_write if path.name == "LATEST.json" else real)(path, value)
    settings = Settings(index_dir=sys.argv[1], chunk_size=200, chunk_overlap=50)
    p = QAPipeline(settings, FakeEmbedder(), FakeReader())
    replication.publish(p.store, sys.argv[2], full=True)
    """
)


def test_a_publisher_killed_before_its_commit_point_changes_nothing_replicas_see(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    first = replication.publish(writer.store, shipped)
    writer.add_articles([LAUNCH])
    proc = subprocess.run(
        [sys.executable, "-c", PUBLISH_KILLED, str(writer.settings.index_dir), str(shipped)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 9, proc.stderr
    assert replication.pull(shipped, root).seq == first.seq  # the previous publication, whole
    assert replication.publish(writer.store, shipped).kind == "delta"
    replication.pull(shipped, root)
    assert answer(make(root), "When did the Zorblax rocket lift off?") == "2031"


def test_a_replica_refuses_writes_and_cannot_publish(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    replica = make(root)
    replica.load()
    with pytest.raises(IndexReadOnlyError, match="read-only replica"):
        replica.add_articles([LAUNCH])
    with pytest.raises(ReplicationError, match="itself a replica"):
        replication.publish(replica.store, tmp_path / "again")


def test_a_pull_that_waited_for_the_lock_acts_on_the_newest_publication(writer, tmp_path, monkeypatch):
    """Two replicas on one node pull into one folder: one may read LATEST.json, wait for the LOCK
    while the other takes a newer publication, and must not then pull a whole copy of the older one."""
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    read_before_the_wait = replication.read_latest(shipped)
    writer.add_articles([LAUNCH])
    newer = replication.publish(writer.store, shipped)
    replication.pull(shipped, root)  # the other replica's pull, meanwhile
    before = (root / "CURRENT").read_text()
    real, calls = replication.read_latest, []

    def first_read_is_stale(folder: Path) -> dict:
        calls.append(folder)
        return read_before_the_wait if len(calls) == 1 else real(folder)

    monkeypatch.setattr(replication, "read_latest", first_read_is_stale)
    done = replication.pull(shipped, root)
    assert (done.kind, done.seq) == ("unchanged", newer.seq)
    assert (root / "CURRENT").read_text() == before
    replica = make(root)
    replica.load()
    assert answer(replica, "When did the Zorblax rocket lift off?") == "2031"


def test_a_synced_folder_behind_the_copy_never_takes_it_back(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    older = (shipped / "LATEST.json").read_text()
    writer.add_articles([LAUNCH])
    newer = replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    before = (root / "CURRENT").read_text()
    (shipped / "LATEST.json").write_text(older)  # e.g. an rsync that put back an older state
    assert (replication.pull(shipped, root).kind, replica_seq(root)) == ("unchanged", newer.seq)
    assert (root / "CURRENT").read_text() == before


def replica_seq(root: Path) -> int | None:
    state = replication.replica_state(root)
    return None if state is None else state.seq


def test_nothing_published_says_how_to_publish(tmp_path):
    with pytest.raises(SnapshotNotFoundError, match="qa replica publish"):
        replication.pull(tmp_path / "nothing", tmp_path / "replica")


# ---- the change log is pruned below what anything still needs -------------------------------------
def log_rows(p: QAPipeline) -> tuple[int, int, int]:
    """(rows in the change log, its floor, the database's seq)."""
    conn = sqlite3.connect(p.store.generation().path)
    try:
        rows = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
        return rows, db.log_floor(conn), int(db.get_meta(conn, "seq"))
    finally:
        conn.close()


def many(n: int, start: int = 0) -> list[Article]:
    return [Article(f"m{i}", f"Item {i}", f"Item number {i} was filed in {1900 + i}.") for i in range(start, start + n)]


def test_the_change_log_is_pruned_at_checkpoints_and_an_old_reader_still_answers(tmp_path):
    writer = make(tmp_path / "writer", dense_checkpoint_every=5)
    writer.build_from_articles(ARTICLES)
    old_reader = make(tmp_path / "writer", dense_checkpoint_every=5)
    old_reader.load()  # its FAISS stays at this seq while the writer writes and prunes
    for i in range(12):
        writer.add_articles(many(1, i))
    rows, floor, seq = log_rows(writer)
    assert floor > 0 and rows == seq - floor  # the log holds exactly the changes after the floor
    assert rows < seq
    assert answer(old_reader, "When was item number 11 filed?") == "1911"  # reloaded the checkpoint
    assert index_state(old_reader) == index_state(writer)
    fresh = make(tmp_path / "writer")
    fresh.load()
    assert answer(fresh, "When was item number 3 filed?") == "1903"


def test_a_publish_target_keeps_the_log_it_makes_its_next_delta_from(tmp_path):
    writer = make(tmp_path / "writer", dense_checkpoint_every=5)
    writer.build_from_articles(ARTICLES)
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    published = replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    for i in range(12):
        writer.add_articles(many(1, i))
    _, floor, _ = log_rows(writer)
    assert floor <= published.seq  # kept from the published seq on
    assert replication.publish(writer.store, shipped).kind == "delta"
    assert replication.pull(shipped, root).kind == "delta"
    assert index_state(make(root)) == index_state(writer)
    with writer.store.write_lock("test"):
        assert writer.store.generation().forget_reader(f"publish:{shipped.resolve()}")
    writer.add_articles(many(6, 20))
    assert log_rows(writer)[1] > published.seq


def test_a_write_after_the_log_was_pruned_empty_keeps_its_seq(tmp_path):
    writer = make(tmp_path / "writer", dense_checkpoint_every=1)
    writer.build_from_articles(ARTICLES)
    writer.add_articles([LAUNCH])
    rows, floor, seq = log_rows(writer)
    assert rows == 0 and floor == seq
    writer.store.apply((), ["no-such-article"])  # a write that changes no passage
    assert log_rows(writer)[2] == seq


PRUNE_KILLED = textwrap.dedent(
    """
    import os, sys
    from qa.config import Settings
    from qa.index import db
    from qa.pipeline import QAPipeline
    from qa.types import Article
    from tests.fakes import FakeEmbedder, FakeReader
    real = db.prune_changes
    def dying_prune(conn, upto):
        deleted = real(conn, upto)
        if deleted:
            os._exit(9)  # the rows deleted inside the transaction, not committed
        return deleted
    db.prune_changes = dying_prune
    settings = Settings(index_dir=sys.argv[1], chunk_size=200, chunk_overlap=50, dense_checkpoint_every=2)
    p = QAPipeline(settings, FakeEmbedder(), FakeReader())
    p.load()
    for i in range(6):
        p.add_articles([Article(f"k{i}", f"K {i}", f"Killed writer number {i} wrote in {2040 + i}.")])
    """
)


def test_a_writer_killed_while_it_prunes_loses_nothing(tmp_path):
    writer = make(tmp_path / "writer", dense_checkpoint_every=2)
    writer.build_from_articles(ARTICLES)
    reader = make(tmp_path / "writer")
    reader.load()
    proc = subprocess.run(
        [sys.executable, "-c", PRUNE_KILLED, str(tmp_path / "writer")], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 9, proc.stderr
    rows, floor, seq = log_rows(reader)
    assert rows == seq - floor  # the prune rolled back whole: no hole in the log
    after = make(tmp_path / "writer")
    after.load()
    written = {a.id for a in after.articles()[0]} - {a.id for a in ARTICLES}
    assert written  # the writes committed before the kill are all there
    for aid in written:
        n = int(aid[1:])
        assert answer(after, f"When did killed writer number {n} write?") == str(2040 + n)
        assert answer(reader, f"When did killed writer number {n} write?") == str(2040 + n)
    reference = make(tmp_path / "ref")
    reference.build_from_articles(after.articles()[0])
    assert index_state(after) == index_state(reference)
    after.add_articles(many(3))  # and the next writer prunes where the killed one could not
    assert log_rows(after)[1] >= floor


def test_a_copy_verifies_even_when_its_folder_is_moved(writer, tmp_path):
    """The transport is a folder: rsync/NFS may put it anywhere, the pull reads it there."""
    replication.publish(writer.store, tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert replication.pull(tmp_path / "b", tmp_path / "replica").kind == "full"
    assert os.path.isfile(tmp_path / "replica" / "CURRENT")


# ---- a server on a replica: seq and lag on /healthz, 503 beyond the bound, writes refused -----------
def test_a_replica_server_reports_its_lag_refuses_when_stale_and_follows_pulls(writer, tmp_path):
    from fastapi.testclient import TestClient

    from qa.serve.app import create_app

    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    first = replication.publish(writer.store, shipped)
    replication.pull(shipped, root)
    settings = Settings(
        index_dir=root,
        chunk_size=200,
        chunk_overlap=50,
        no_answer_threshold=0.5,
        replica_max_lag_s=30,
        admin_token="replica-test-token-0123456789",
    )
    app = create_app(settings, QAPipeline(settings, FakeEmbedder(), FakeReader()))
    with TestClient(app) as client:
        for _ in range(200):
            health = client.get("/healthz")
            if health.status_code == 200:
                break
            time.sleep(0.05)
        body = health.json()
        assert body["status"] == "ready" and body["replica"]["seq"] == first.seq
        assert body["replica"]["lag_s"] < 30 and not body["replica"]["stale"]

        writer.add_articles([LAUNCH])
        replication.publish(writer.store, shipped)
        replication.pull(shipped, root)
        r = client.post("/ask", json={"question": "When did the Zorblax rocket lift off?"})
        assert r.status_code == 200 and r.json()["answers"][0]["text"] == "2031"
        assert client.get("/healthz").json()["replica"]["seq"] > first.seq

        write = client.post(
            "/articles",
            json={"articles": [{"text": "Written on a replica in 2040."}]},
            headers={"Authorization": "Bearer replica-test-token-0123456789"},
        )
        assert write.status_code == 403 and "read-only replica" in write.json()["detail"]

        # The writer's publisher stops: the copy's age passes the bound.
        state_file = root / (root / "CURRENT").read_text().strip() / "replica.json"
        state = json.loads(state_file.read_text())
        state_file.write_text(json.dumps({**state, "as_of": state["as_of"] - 120}))
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "stale"
        r = client.post("/ask", json={"question": "When did the Zorblax rocket lift off?"})
        assert r.status_code == 503 and "behind the writer" in r.json()["detail"]
        replication.publish(writer.store, shipped)  # "unchanged": the writer is still at this seq, now
        replication.pull(shipped, root)
        assert client.post("/ask", json={"question": "When did the Zorblax rocket lift off?"}).status_code == 200


def test_the_cli_publishes_pulls_and_says_what_it_did(writer, tmp_path, monkeypatch, capsys):
    from qa.cli import main

    shipped = tmp_path / "shipped"
    monkeypatch.setenv("QA_INDEX_DIR", str(writer.settings.index_dir))
    assert main(["replica", "pull", str(shipped)]) == 2
    assert "nothing is published" in capsys.readouterr().err
    assert main(["replica", "publish", str(shipped)]) == 0
    assert "published full" in capsys.readouterr().out
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "replica"))
    assert main(["replica", "pull", str(shipped), "--name", "r1"]) == 0
    assert "is at seq" in capsys.readouterr().out
    assert main(["replica", "status", str(shipped)]) == 0
    assert "replica r1: seq" in capsys.readouterr().out
    assert main(["replica", "publish", str(shipped)]) == 2  # a replica does not publish
    assert "itself a replica" in capsys.readouterr().err
    monkeypatch.setenv("QA_INDEX_DIR", str(writer.settings.index_dir))
    assert main(["replica", "forget", str(shipped)]) == 0
    assert "no longer keeps its change log" in capsys.readouterr().out
    assert main(["replica", "forget", str(shipped)]) == 1


def test_a_puller_keeps_its_store_and_faiss_loaded_from_one_pull_to_the_next(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    store = replication.replica_store(shipped, root)
    assert replication.pull(shipped, root, store=store).kind == "full"
    loaded = store.generation().dense
    for i in range(3):
        writer.add_articles(many(1, i))
        replication.publish(writer.store, shipped)
        assert replication.pull(shipped, root, store=store).kind == "delta"
        assert replication.pull(shipped, root, store=store).kind == "unchanged"
    assert store.generation().dense is loaded  # followed by replaying, never reloaded
    assert index_state(make(root)) == index_state(writer)
