"""A replica's copy kept current in the background (qa/index/follower.py), and what `qa serve --ray
--replica-of` builds on it without Ray (qa/cluster/node_copy.py, the app's first pull, the CLI's
refusals). The real two-node cluster is tests/test_replica_cluster.py."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa.cluster.node_copy import DEFAULT_MAX_LAG_S, CopySource, driver_settings, follower_for, node_local
from qa.config import Settings
from qa.index import replication
from qa.index.follower import Follower
from qa.index.replication import ReplicationError, SnapshotNotFoundError
from qa.pipeline import QAPipeline
from qa.serve.app import create_app
from tests.fakes import FakeEmbedder, FakeReader
from tests.index_state import index_state
from tests.test_replication import ARTICLES, LAUNCH, answer, damage, make, many

NEW_QUESTION = "When did the Zorblax rocket lift off?"


@pytest.fixture
def writer(tmp_path: Path) -> QAPipeline:
    p = make(tmp_path / "writer")
    p.build_from_articles(ARTICLES)
    return p


def wait_for(condition, timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, "timed out"
        time.sleep(0.05)
    return time.monotonic() - started


def seq_of(root: Path) -> int:
    state = replication.replica_state(root)
    return -1 if state is None else state.seq


def test_the_first_pull_comes_first_then_the_copy_follows_in_the_background(writer, tmp_path):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    follower = Follower(shipped, root, every_s=0.1)
    try:
        assert follower.start().kind == "full"  # in the caller's thread: a copy to serve on return
        server = make(root)
        server.load()
        assert answer(server, NEW_QUESTION) != "2031"
        writer.add_articles([LAUNCH])
        published = replication.publish(writer.store, shipped)
        wait_for(lambda: seq_of(root) == published.seq)
        assert answer(server, NEW_QUESTION) == "2031"
    finally:
        follower.stop()


def test_a_failed_pull_is_logged_once_and_the_old_generation_keeps_serving(writer, tmp_path, caplog):
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    follower = Follower(shipped, root, every_s=0.05)
    follower.start()
    before = (root / "CURRENT").read_text()
    try:
        with caplog.at_level(logging.WARNING, logger="qa.index.follower"):
            writer.build_from_articles([LAUNCH])  # a new generation: the next pull is a whole copy
            replication.publish(writer.store, shipped)
            damage(shipped / replication.read_latest(shipped)["full"]["folder"] / "store.sqlite")
            wait_for(lambda: "pull failed" in caplog.text)
            time.sleep(0.5)  # ten more failed pulls
            assert caplog.text.count("pull failed") == 1 and "keeps serving seq" in caplog.text
            assert (root / "CURRENT").read_text() == before
            server = make(root)
            server.load()
            assert answer(server, "When does New Start expire?") == "2021"

            replication.publish(writer.store, shipped, full=True)  # published again whole: taken
            wait_for(lambda: (root / "CURRENT").read_text() != before)
            wait_for(lambda: "pulls again" in caplog.text)
        assert answer(server, NEW_QUESTION) == "2031"
    finally:
        follower.stop()


def test_two_followers_of_one_folder_take_turns_and_agree(writer, tmp_path, caplog):
    """Two replicas on one node share its folder: their pulls take the folder's LOCK in turn."""
    shipped, root = tmp_path / "shipped", tmp_path / "replica"
    replication.publish(writer.store, shipped)
    followers = [Follower(shipped, root, every_s=0.02, name=f"r{i}") for i in range(2)]
    try:
        with caplog.at_level(logging.WARNING, logger="qa.index.follower"):
            kinds = sorted(f.start().kind for f in followers)
            assert kinds == ["full", "unchanged"]  # the second found the first's copy current
            for i in range(3):
                writer.add_articles(many(1, i))
                published = replication.publish(writer.store, shipped)
                wait_for(lambda seq=published.seq: seq_of(root) == seq)
            time.sleep(0.2)
        assert "pull failed" not in caplog.text
        assert index_state(make(root)) == index_state(writer)
    finally:
        for f in followers:
            f.stop()


def test_a_follower_never_pulls_over_a_writers_index(writer, tmp_path):
    shipped = tmp_path / "shipped"
    replication.publish(writer.store, shipped)
    before = (writer.settings.index_dir / "CURRENT").read_text()
    with pytest.raises(ReplicationError, match="not a pulled copy"):
        Follower(shipped, writer.settings.index_dir).start()
    assert (writer.settings.index_dir / "CURRENT").read_text() == before


def test_nothing_published_is_an_error_the_first_pull_raises(tmp_path):
    with pytest.raises(SnapshotNotFoundError, match="qa replica publish"):
        Follower(tmp_path / "nothing", tmp_path / "replica").start()


def test_a_node_local_path_names_the_node_or_the_host(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "box7")
    assert node_local(Path("/var/qa/copy-{node}"), "abc123") == Path("/var/qa/copy-abc123")
    assert node_local(Path("/var/qa/{host}/index"), "abc123") == Path("/var/qa/box7/index")
    assert node_local(Path("/var/qa/index"), "abc123") == Path("/var/qa/index")


def test_the_driver_gives_replicas_an_absolute_node_local_folder_and_a_lag_bound(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QA_REPLICA_MAX_LAG_S", raising=False)
    monkeypatch.setenv("QA_INDEX_DIR", "copies/{node}")
    settings = driver_settings(Settings())
    assert settings.index_dir == tmp_path / "copies" / "{node}"
    assert settings.replica_max_lag_s == DEFAULT_MAX_LAG_S
    monkeypatch.setenv("QA_REPLICA_MAX_LAG_S", "7")
    monkeypatch.delenv("QA_INDEX_DIR")
    settings = driver_settings(Settings())
    assert settings.replica_max_lag_s == 7
    assert "{node}" in str(settings.index_dir)  # never the default index itself: that is the writer's


def test_a_replica_app_says_loading_until_its_first_pull_and_never_builds_an_index(writer, tmp_path):
    """The app `qa serve --ray --replica-of` builds in each replica, without Ray: the first pull runs
    before the index is opened; with nothing published /healthz says so (and how to publish), no
    index is built from the bundled articles, and the pull is tried again until it succeeds."""
    shipped = tmp_path / "shipped"
    settings = Settings(
        index_dir=tmp_path / "copy-{node}",
        chunk_size=200,
        chunk_overlap=50,
        no_answer_threshold=0.5,
        admin_token="replica-test-token-0123456789",
    )
    settings = driver_settings(settings)
    from qa.cluster.node_copy import replica_settings

    settings = replica_settings(settings, "node1")
    follower = follower_for(settings, CopySource(shipped, 0.1), "node1")
    app = create_app(settings, QAPipeline(settings, FakeEmbedder(), FakeReader()), follower.start, node="node1")
    try:
        with TestClient(app) as client:
            wait_for(lambda: client.get("/healthz").json()["status"] == "error")
            health = client.get("/healthz")
            assert health.status_code == 503 and "qa replica publish" in health.json()["detail"]
            assert health.json()["node"] == "node1"
            assert not (tmp_path / "copy-node1" / "CURRENT").exists()  # nothing built meanwhile

            replication.publish(writer.store, shipped)
            wait_for(lambda: client.get("/healthz").status_code == 200, timeout_s=20)  # retried every 2 s
            body = client.get("/healthz").json()
            assert body["replica"]["seq"] >= 0 and body["replica"]["max_lag_s"] == DEFAULT_MAX_LAG_S
            assert body["node"] == "node1"
            writer.add_articles([LAUNCH])
            replication.publish(writer.store, shipped)

            def answered() -> bool:
                answers = client.post("/ask", json={"question": NEW_QUESTION}).json()["answers"]
                return bool(answers) and answers[0]["text"] == "2031"

            wait_for(answered)
            write = client.post(
                "/articles",
                json={"articles": [{"text": "Written on a replica in 2040."}]},
                headers={"Authorization": "Bearer replica-test-token-0123456789"},
            )
            assert write.status_code == 403 and "read-only replica" in write.json()["detail"]
    finally:
        follower.stop()


def test_the_cli_refuses_replica_of_without_ray_or_without_a_publication(tmp_path, monkeypatch, capsys):
    from qa.cli import main

    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "copy-{node}"))
    with pytest.raises(SystemExit, match="needs --ray.*qa replica pull"):
        main(["serve", "--replica-of", str(tmp_path / "shipped")])
    assert main(["serve", "--ray", "127.0.0.1:1", "--replica-of", str(tmp_path / "shipped")]) == 2
    assert "nothing is published" in capsys.readouterr().err  # said before any Ray, no index built
    with pytest.raises(SystemExit, match="--pull-every goes with --replica-of"):
        main(["serve", "--ray", "127.0.0.1:1", "--pull-every", "2"])
    assert not list(tmp_path.iterdir())
