"""Replicas on another node of a real multi-node Ray cluster, on one machine: `ray start --head`
plus a second `ray start --address ...` node with its own resource ("replica_node") and its own
index folder. The writer (the test's driver process, on the head) publishes into a folder that
stands for a shared or synced directory.

- An actor pinned to the second node pulls it into its own folder and answers from its copy; a
  pull killed midway or a damaged copy leaves the old generation serving.
- `qa serve --ray ADDRESS --replicas 2 --replica-of FOLDER` (a real CLI process, the real models):
  one replica on each node (each node has one CPU), each over its node's own copy
  (QA_INDEX_DIR=.../copy-{node}); an article written on the head is answered through Ray Serve's
  HTTP proxy within the documented lag, by the replica on the second node too; writes get 403; a
  copy whose publisher stopped answers 503 past QA_REPLICA_MAX_LAG_S.

Needs the cluster extra (`pip install -e '.[cluster]'`); skipped without it, failed with
QA_REQUIRE_RAY=1. Every Ray process it starts is stopped by process id at the end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

if os.environ.get("QA_REQUIRE_RAY") == "1":
    import ray  # noqa: F401  (an ImportError fails the run: CI must run these tests)
ray = pytest.importorskip("ray", reason="Ray is not installed: the cluster tests need pip install -e '.[cluster]'")

from qa.index import replication  # noqa: E402
from qa.pipeline import QAPipeline  # noqa: E402
from qa.types import Article  # noqa: E402
from tests.test_replication import ARTICLES, LAUNCH, answer, damage, make  # noqa: E402

pytestmark = [pytest.mark.cluster]

ROOT = Path(__file__).resolve().parent.parent
RAY = Path(sys.executable).with_name("ray")
MAX_LAG_S = 5.0  # docs/scale-out.md: publish and pull every second, an answer within 5 s of the commit
OLD_QUESTION = "When does New Start expire?"
NEW_QUESTION = "When did the Zorblax rocket lift off?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ports(*names: str) -> list[str]:
    return [f"--{name}={_free_port()}" for name in names]


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    children: dict[int, list[int]] = {}
    for pid_text, parent_text in zip(out[::2], out[1::2], strict=True):
        children.setdefault(int(parent_text), []).append(int(pid_text))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _ours(temp_dir: str) -> list[int]:
    """Processes whose command line names this cluster's own temp folder (gcs, raylets, agents)."""
    out = subprocess.run(["pgrep", "-f", temp_dir], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


def _stop(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _without_ray_state() -> dict[str, str]:
    """This environment less what an earlier Ray session of this process left in it (ray.init
    exports RAY_* variables naming its own, now stopped, cluster)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}


@contextmanager
def two_node_cluster(temp_dir: str) -> Iterator[dict[str, str]]:
    """A head node and a second node on this machine, each its own `ray start --block`, with this
    process as the driver; `temp_dir` is Ray's folder for both (short: Ray's socket paths have a
    length limit)."""
    env = {
        **_without_ray_state(),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        # `ray start --head` turns token authentication on by default in Ray 2.60, a driver reads the
        # mode once when ray is imported (off unless set): the nodes of this private cluster run without.
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    port = _free_port()
    common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    agents = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port")

    def ray_start(*args: str) -> subprocess.Popen[bytes]:
        """`ray start` with this cluster's shared options and fresh agent ports, in its own session."""
        return subprocess.Popen(
            [str(RAY), "start", *args, *common, *_ports(*agents)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    head = ray_start("--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false")
    started = [head]
    old_env = {k: os.environ.get(k) for k in ("PYTHONPATH",)}
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while subprocess.run([str(RAY), "status", f"--address={address}"], env=env, capture_output=True).returncode:
            assert head.poll() is None and time.monotonic() < deadline, "the head node did not start"
            time.sleep(1)
        second = ray_start(f"--address={address}", '--resources={"replica_node": 1}')
        started.append(second)
        os.environ.update({k: env[k] for k in old_env})
        ray.init(address=address, logging_level=logging.ERROR)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert second.poll() is None and time.monotonic() < deadline, "the second node did not join"
            time.sleep(0.5)
        yield {"address": address, "head_node": ray.get_runtime_context().get_node_id()}
    finally:
        ray.shutdown()
        for k, v in old_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        pids = [p.pid for p in started] + [d for p in started for d in _descendants(p.pid)] + _ours(temp_dir)
        _stop(pids, signal.SIGTERM)  # `ray start --block` stops its node's processes on SIGTERM
        for p in started:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                pass
        time.sleep(2)
        _stop(sorted(set(pids + _ours(temp_dir))), signal.SIGKILL)
        for p in started:
            p.wait(10)
        shutil.rmtree(temp_dir, ignore_errors=True)


class ReplicaHost:
    """A replica node's copy: pulls from the published folder into its own index folder and answers
    from it (the fake models: this is about the copy, not the reader)."""

    def __init__(self, shipped: str, root: str) -> None:
        self.shipped, self.root = shipped, root
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._pipeline: QAPipeline | None = None

    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def pull(self) -> tuple[str, int]:
        done = replication.pull(self.shipped, self.root, name="node2")
        return done.kind, done.seq

    def ask(self, question: str) -> str | None:
        if self._pipeline is None:
            pipeline = make(Path(self.root))
            pipeline.load()
            self._pipeline = pipeline
        return answer(self._pipeline, question)

    def current(self) -> str:
        return (Path(self.root) / "CURRENT").read_text().strip()

    def follow(self, every_s: float) -> None:
        """Pull every `every_s` seconds in the background (what `qa replica pull --every` does)."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    replication.pull(self.shipped, self.root, name="node2")
                except Exception as exc:  # recorded for the test; the copy keeps serving
                    self.errors.append(repr(exc))

        threading.Thread(target=loop, daemon=True).start()

    def stop_following(self) -> list[str]:
        self._stop.set()
        time.sleep(0.2)
        return self.errors


def pull_killed_midway(shipped: str, root: str) -> None:
    """A pull on the replica node whose process dies after two files were copied."""
    real, copied = replication._copy_hashed, []

    def dying(src, dst, bar=None):
        copied.append(src)
        if len(copied) == 3:
            os._exit(9)
        return real(src, dst, bar)

    replication._copy_hashed = dying
    replication.pull(shipped, root, name="killed")


def run_driver(tmp_path: Path, scenario_name: str) -> str:
    """Run a scenario as its own driver process, in an environment without the RAY_* variables an
    earlier Ray session of this process exported (tests/test_cluster.py's ray.init sets
    RAY_AUTH_MODE=token: a driver of this cluster, whose nodes run without, then had its actors
    refused, "Actor may be already destroyed"), as a real deployment's driver is its own process.
    Returns what it printed."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**_without_ray_state(), "PYTHONPATH": path}
    temp_dir = tempfile.mkdtemp(prefix="rayqa-", dir="/tmp")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.test_replica_cluster", str(tmp_path), temp_dir, scenario_name],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:  # a driver killed by the timeout leaves its nodes: stop every process of this cluster
        _stop(_ours(temp_dir), signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_an_article_written_on_the_head_is_answered_on_the_other_node_within_the_lag(tmp_path):
    assert "replica lag after a commit" in run_driver(tmp_path, "actor")


@pytest.mark.real_models
def test_qa_serve_replica_of_answers_from_each_nodes_own_copy_within_the_lag(tmp_path):
    out = run_driver(tmp_path, "serve")
    assert "answered by the second node's replica" in out and "stale copy refused" in out


def scenario(tmp_path: Path, temp_dir: str, name: str = "actor") -> None:
    with two_node_cluster(temp_dir) as cluster:
        (serve_on if name == "serve" else run_on)(cluster, tmp_path)


def run_on(cluster: dict[str, str], tmp_path: Path) -> None:
    on_replica_node: dict[str, float] = {"replica_node": 0.5}
    host_class = ray.remote(num_cpus=0, resources=on_replica_node, max_concurrency=4)(ReplicaHost)  # type: ignore[call-overload, unused-ignore]
    killed_pull = ray.remote(num_cpus=0, resources=on_replica_node, max_retries=0)(pull_killed_midway)
    writer = make(tmp_path / "writer")
    writer.build_from_articles(ARTICLES)
    shipped, replica_root = tmp_path / "shipped", tmp_path / "node2-index"
    replication.publish(writer.store, shipped)

    host = host_class.remote(str(shipped), str(replica_root))
    node = ray.get(host.node.remote())
    assert node != cluster["head_node"]  # the copy lives on the other node
    assert ray.get(host.pull.remote())[0] == "full"
    assert ray.get(host.ask.remote(OLD_QUESTION)) == "2021"
    assert ray.get(host.ask.remote(NEW_QUESTION)) != "2031"

    # The writer publishes every second, the replica pulls every second.
    stop = threading.Event()

    def publisher() -> None:
        while not stop.wait(1.0):
            replication.publish(writer.store, shipped)

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()
    ray.get(host.follow.remote(1.0))
    try:
        writer.add_articles([LAUNCH])
        committed = time.monotonic()
        while ray.get(host.ask.remote(NEW_QUESTION)) != "2031":
            assert time.monotonic() - committed < 30, "the article never reached the replica"
            time.sleep(0.1)
        lag = time.monotonic() - committed
    finally:
        stop.set()
        thread.join()
        errors = ray.get(host.stop_following.remote())
    print(f"replica lag after a commit: {lag:.2f} s")
    assert lag <= MAX_LAG_S
    assert not errors

    # A copy killed mid-transfer on the replica node leaves the old generation serving.
    before = ray.get(host.current.remote())
    writer.build_from_articles([*ARTICLES, Article("x1", "Probe", "The probe reached Titan in 2044.")])
    assert replication.publish(writer.store, shipped).kind == "full"
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(killed_pull.remote(str(shipped), str(replica_root)), timeout=120)
    assert ray.get(host.current.remote()) == before
    assert ray.get(host.ask.remote(NEW_QUESTION)) == "2031"

    # A damaged copy is refused, and the old generation still serves.
    newest = shipped / replication.read_latest(shipped)["full"]["folder"]
    damage(newest / "store.sqlite")
    with pytest.raises(ray.exceptions.RayTaskError, match="SnapshotCorruptError"):
        ray.get(host.pull.remote())
    assert ray.get(host.current.remote()) == before
    assert ray.get(host.ask.remote(NEW_QUESTION)) == "2031"
    assert ray.get(host.ask.remote("When did the probe reach Titan?")) != "2044"

    # Published again whole, the replica takes it.
    assert replication.publish(writer.store, shipped, full=True).kind == "full"
    assert ray.get(host.pull.remote())[0] == "full"
    assert ray.get(host.ask.remote("When did the probe reach Titan?")) == "2044"


# ---- qa serve --ray --replica-of: Serve replicas on both nodes, each over its node's own copy ----
TOKEN = "replica-cluster-token-0123456789"
SERVE_MAX_LAG_S = 8.0  # QA_REPLICA_MAX_LAG_S of the replicas: the stale check waits for it
LATER = [  # written on the head one after the other, each answered by the other node's replica
    (LAUNCH, NEW_QUESTION, "2031"),
    (
        Article("new2", "Probe", "The Quokka probe landed on Europa in 2037.", "2037-02-01", "Wire"),
        "When did the Quokka probe land on Europa?",
        "2037",
    ),
    (
        Article("new3", "Bridge", "The Vantor bridge in Oslo opened in 2033.", "2033-06-01", "Wire"),
        "When did the Vantor bridge open?",
        "2033",
    ),
    (
        Article("new4", "Ferry", "The Kelvara ferry sank near Bergen in 2029.", "2029-09-01", "Wire"),
        "When did the Kelvara ferry sink?",
        "2029",
    ),
    (
        Article("new5", "Mine", "The Ostrava mine closed for good in 2035.", "2035-11-01", "Wire"),
        "When did the Ostrava mine close?",
        "2035",
    ),
]


def http(method: str, url: str, body: object = None, token: str | None = None) -> tuple[int, str, dict]:
    """(status, the X-QA-Node of the replica that answered, the JSON body); status 0 when nothing
    listens yet. A new connection each time: the kernel spreads them over the two nodes' proxies
    (SO_REUSEPORT on one address), and each proxy prefers its own node's replica."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            status, node, raw = r.status, r.headers.get("X-QA-Node", ""), r.read()
    except urllib.error.HTTPError as exc:
        status, node, raw = exc.code, exc.headers.get("X-QA-Node", ""), exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, "", {}
    try:
        return status, node, json.loads(raw or b"{}")
    except ValueError:
        return status, node, {}


def answer_of(body: dict) -> str | None:
    answers = body.get("answers") or []
    return answers[0]["text"] if answers else None


def start_qa_serve(address: str, port: int, shipped: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **_without_ray_state(),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "RAY_AUTH_MODE": "disabled",  # as the nodes (two_node_cluster)
        "QA_INDEX_DIR": str(tmp_path / "copy-{node}"),  # each node's own folder, on one machine
        "QA_REPLICA_MAX_LAG_S": str(SERVE_MAX_LAG_S),
        "QA_ADMIN_TOKEN": TOKEN,
    }
    argv = ["serve", "--ray", address, "--replicas", "2", "--replica-of", str(shipped), "--port", str(port)]
    log_file = open(tmp_path / "qa-serve.log", "wb")  # noqa: SIM115 (the process writes it until stopped)
    return subprocess.Popen(
        [sys.executable, "-m", "qa.cli", *argv],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=log_file,
        start_new_session=True,
    )


def ready_nodes(url: str, serving: subprocess.Popen[bytes], tmp_path: Path, timeout_s: float = 400) -> dict[str, dict]:
    """Poll /healthz through the proxy until a replica on each of the two nodes says ready."""
    ready: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while len(ready) < 2:
        log_text = (tmp_path / "qa-serve.log").read_text(errors="replace")
        assert serving.poll() is None, f"qa serve exited: {log_text[-3000:]}"
        assert time.monotonic() < deadline, f"replicas not ready on both nodes: {ready}; {log_text[-3000:]}"
        status, node, body = http("GET", f"{url}/healthz")
        if status == 200 and body.get("status") == "ready":
            assert body["node"] == node and body["replica"] is not None
            ready[node] = body
        else:
            time.sleep(0.5)
    return ready


def lag_to_the_other_node(
    url: str, other: str, writer: QAPipeline, article: Article, question: str, expected: str
) -> tuple[float, float, float]:
    """Write `article` on the head; seconds until (any replica answers it, the other node's copy
    holds it per its /healthz, the other node's replica answers it), all through the proxy."""
    articles = writer.counts().articles
    writer.add_articles([article])
    committed = time.monotonic()
    first = copied = None
    while True:
        assert time.monotonic() - committed < 60, "the article never reached the other node's replica"
        if copied is None:
            _, node, health = http("GET", f"{url}/healthz")
            if node == other and health.get("articles", 0) > articles:
                copied = time.monotonic() - committed
        status, node, body = http("POST", f"{url}/ask", {"question": question})
        if status == 200 and answer_of(body) == expected:
            first = first or time.monotonic() - committed
            if node == other:
                answered = time.monotonic() - committed
                return first, answered if copied is None else copied, answered


def refuses_when_stale(url: str, other: str, stop_publishing: threading.Event) -> float:
    """Stop the writer's publisher: the other node's copy stops being confirmed current, and past
    the bound its replica answers 503 (and /healthz says stale). Returns when, after the stop."""
    stop_publishing.set()
    stopped = time.monotonic()
    while True:
        assert time.monotonic() - stopped < SERVE_MAX_LAG_S + 30, "a copy that fell behind kept answering"
        status, node, body = http("POST", f"{url}/ask", {"question": NEW_QUESTION})
        if node != other:
            continue
        if status == 503:
            assert "behind the writer" in body["detail"], body
            return time.monotonic() - stopped
        assert status == 200 and answer_of(body) == "2031"
        time.sleep(0.5)


def serve_on(cluster: dict[str, str], tmp_path: Path) -> None:
    from qa.config import Settings

    writer = QAPipeline(Settings(index_dir=tmp_path / "writer"))  # the real embedder, as the replicas'
    writer.build_from_articles(ARTICLES)
    shipped = tmp_path / "shipped"
    replication.publish(writer.store, shipped)
    stop = threading.Event()

    def publisher() -> None:  # `qa replica publish FOLDER --every 1` on the head
        while not stop.wait(1.0):
            replication.publish(writer.store, shipped)

    threading.Thread(target=publisher, daemon=True).start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    serving = start_qa_serve(cluster["address"], port, shipped, tmp_path)
    try:
        nodes = ready_nodes(url, serving, tmp_path)
        (other,) = set(nodes) - {cluster["head_node"]}
        assert cluster["head_node"] in nodes  # "any node": one replica on each
        assert {p.name for p in tmp_path.glob("copy-*")} == {f"copy-{n}" for n in nodes}  # a folder per node
        assert all((tmp_path / f"copy-{n}" / "CURRENT").is_file() for n in nodes)
        lags = [lag_to_the_other_node(url, other, writer, *later) for later in LATER]
        print(
            f"median lag, commit -> answer by the second node's replica: "
            f"{statistics.median(a for _, _, a in lags):.2f} s over {len(lags)} articles; "
            f"load average (1 min) {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for first, copied, answered in lags:
            print(
                f"commit -> first answer {first:.2f} s, other node's copy {copied:.2f} s, "
                f"answered by the second node's replica {answered:.2f} s",
                flush=True,
            )
        assert max(first for first, _, _ in lags) <= MAX_LAG_S
        assert max(copied for _, copied, _ in lags) <= MAX_LAG_S
        write = http("POST", f"{url}/articles", {"articles": [{"text": "Written on a replica in 2040."}]}, TOKEN)
        assert write[0] == 403 and "read-only replica" in write[2]["detail"], write
        refused = refuses_when_stale(url, other, stop)
        print(f"stale copy refused {refused:.1f} s after the publisher stopped", flush=True)
        _, _, health = http("GET", f"{url}/healthz")
        assert health.get("status") == "stale" or health.get("node") != other
    finally:
        stop.set()
        serving.send_signal(signal.SIGTERM)  # the CLI takes the application and Serve down
        try:
            serving.wait(90)
        except subprocess.TimeoutExpired:
            serving.kill()


if __name__ == "__main__":  # the driver process of the test above
    logging.basicConfig(level=logging.WARNING)
    scenario(Path(sys.argv[1]), sys.argv[2], *sys.argv[3:4])
    print("scenario passed", flush=True)
