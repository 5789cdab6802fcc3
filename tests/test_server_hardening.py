"""Issue 27: the server against cut-off uploads, endless headers, forged addresses, huge offsets,
damaged index files, lost WAL files and odd questions, over real sockets: in this process over
the fake models (tests.servers.InProcessServer), or as a process of its own (tests.fake_server)
where it is signalled, killed or might die."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.server_process import free_port, health
from qa.config import Settings
from qa.index.store import IndexStore
from qa.pipeline import QAPipeline
from qa.serve.deps import AppState
from tests.fakes import FakeEmbedder, FakeReader
from tests.servers import ROOT, TEST_OUTPUT, InProcessServer
from tests.test_server_guards import read_until_closed

TOKEN = "hardening-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSONL_LINE = b'{"id": "cut%d", "title": "Cut %d", "text": "A story from 2030 about harbour number %d."}\n'


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "a.txt").write_text("Treaty news\nNew Start is set to expire in 2021, officials said.")
    return folder


@pytest.fixture
def serve(tmp_path, seeds):
    """serve(**settings) -> a ready InProcessServer with the admin token; stopped afterwards."""
    started: list[InProcessServer] = []

    def start(wait_ready: bool = True, **overrides) -> InProcessServer:
        overrides.setdefault("index_dir", tmp_path / f"index{len(started)}")
        settings = Settings(seeds_dir=seeds, no_answer_threshold=0.5, admin_token=TOKEN, **overrides)
        server = InProcessServer(settings, QAPipeline(settings, FakeEmbedder(), FakeReader()), wait_ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def access_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qa.access"]


def wait_for_line(caplog, needle: str, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [line for line in access_lines(caplog) if needle in line]
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no access line with {needle!r}: {access_lines(caplog)}")


def stored_ids(server: InProcessServer) -> set[str]:
    return {a["id"] for a in httpx.get(f"{server.url}/articles?limit=500", timeout=30).json()["articles"]}


def upload_head(server: InProcessServer, framing: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        b"POST /articles/file HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n" + framing + b"\r\n"
    )
    return sock


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---- 1. cut-off uploads -----------------------------------------------------------------------
def test_a_chunked_upload_whose_client_leaves_stores_nothing_and_is_logged_as_gone(serve, caplog):
    caplog.set_level(logging.INFO)
    server = serve()
    before = stored_ids(server)
    sock = upload_head(server, b"Transfer-Encoding: chunked\r\n")
    sock.sendall(chunk(JSONL_LINE % (1, 1, 1)))
    time.sleep(0.3)
    sock.close()
    line = wait_for_line(caplog, '"POST /articles/file"')
    assert line.endswith("client gone") and " 201 " not in line, line
    time.sleep(0.5)
    assert stored_ids(server) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no 500, no traceback"


def test_a_stalled_chunked_upload_is_answered_408_and_stores_nothing(serve, caplog):
    caplog.set_level(logging.INFO)
    server = serve(body_timeout_s=0.5)
    before = stored_ids(server)
    sock = upload_head(server, b"Transfer-Encoding: chunked\r\n")
    sock.sendall(chunk(JSONL_LINE % (1, 1, 1) + JSONL_LINE % (2, 2, 2)))
    received, _ = read_until_closed(sock, 5)  # then nothing more: the body stalls
    sock.close()
    assert received.startswith(b"HTTP/1.1 408"), received
    assert "body not complete" in wait_for_line(caplog, '"POST /articles/file" 408')
    time.sleep(0.5)
    assert stored_ids(server) == before


def test_an_upload_cut_short_of_its_content_length_is_a_client_disconnect_not_a_500(serve, caplog):
    caplog.set_level(logging.INFO)
    server = serve()
    body = JSONL_LINE % (1, 1, 1) + JSONL_LINE % (2, 2, 2)
    sock = upload_head(server, b"Content-Length: %d\r\n" % (len(body) + 1000))
    sock.sendall(body)
    time.sleep(0.3)
    sock.close()
    line = wait_for_line(caplog, '"POST /articles/file"')
    assert line.endswith("client gone") and " 500 " not in line, line
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert not {"cut1", "cut2"} & stored_ids(server)


# ---- 2. header size ---------------------------------------------------------------------------
def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_headers_past_the_limit_are_refused_with_431_and_do_not_grow_the_server(serve, caplog):
    caplog.set_level(logging.INFO)
    server = serve()
    before = rss_bytes()
    pad = b"X-Pad: " + b"a" * 65_000 + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        try:
            while sent < 200_000_000:  # 200 MB, unless the server stops reading first
                sock.sendall(pad)
                sent += len(pad)
        except OSError:
            pass
        received, _ = read_until_closed(sock, 10)
    assert received.startswith(b"HTTP/1.1 431"), received[:100]
    assert sent < 20_000_000, f"the server read {sent} bytes of headers before refusing"
    assert rss_bytes() - before < 50_000_000
    assert "431" in wait_for_line(caplog, "headers over")
    assert httpx.get(f"{server.url}/healthz", headers={"X-Ok": "b" * 1000}, timeout=10).status_code == 200


def test_a_request_larger_than_the_header_limit_in_one_segment_is_not_taken_for_headers(serve):
    """A bulk POST /articles whose headers and body arrive in one read (over the header limit)
    is answered, not refused as endless headers; so is the next one on the same kept-alive
    connection."""
    limit = 16_384
    server = serve(max_header_bytes=limit)
    text = "A note from 2031 about harbour works. " * 60  # ~2.3 kB an article
    for batch in range(2):
        articles = [{"id": f"bulk{batch}-{i}", "title": f"Bulk {i}", "text": text} for i in range(12)]
        body = json.dumps({"articles": articles}).encode()
        assert len(body) > limit
        head = (
            f"POST /articles HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        if batch == 0:
            sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(head + body)  # one write: one segment on loopback
        assert read_one_response(sock).startswith(b"HTTP/1.1 201"), "refused"
    sock.close()
    assert httpx.get(f"{server.url}/articles/bulk1-11", timeout=10).status_code == 200


def read_one_response(sock: socket.socket) -> bytes:
    """One HTTP response with a Content-Length, read off a kept-alive connection."""
    sock.settimeout(30)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection: {received[:200]!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


# ---- 3. who the client is, and the token throttle ---------------------------------------------
def test_forged_forwarded_for_neither_escapes_the_throttle_nor_locks_the_admin_out(serve, caplog):
    caplog.set_level(logging.INFO)
    server = serve(max_auth_failures_per_minute=2)
    article = {"articles": [{"title": "T", "text": "A note from 2031."}]}
    url = f"{server.url}/articles"
    for n in range(2):
        wrong = {"Authorization": "Bearer wrong", "X-Forwarded-For": f"10.0.0.{n}"}
        assert httpx.post(url, json=article, headers=wrong, timeout=10).status_code == 401
    # A third wrong token, under yet another forged address: throttled, its answer held.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            url, json=article, headers={"Authorization": "Bearer wrong", "X-Forwarded-For": "10.0.0.9"}, timeout=1.5
        )
    # The right token from the same (throttled) address is accepted at once.
    started = time.monotonic()
    r = httpx.post(url, json=article, headers=AUTH, timeout=10)
    assert r.status_code == 201 and time.monotonic() - started < 5, r.text
    lines = [line for line in access_lines(caplog) if '"POST /articles"' in line]
    assert lines and all(line.startswith("127.0.0.1 ") for line in lines), lines


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(serve, caplog):
    caplog.set_level(logging.INFO)
    server = serve(trusted_proxies=["127.0.0.1"])
    httpx.get(f"{server.url}/healthz", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
    assert wait_for_line(caplog, "203.0.113.7").startswith('203.0.113.7 "GET /healthz" 200')


# ---- 4. offsets -------------------------------------------------------------------------------
def test_an_offset_past_what_sqlite_takes_is_422_not_500(serve):
    server = serve()
    r = httpx.get(f"{server.url}/articles", params={"offset": 9223372036854775808}, timeout=10)
    assert r.status_code == 422 and "offset" in r.json()["detail"], r.text


# ---- 8. smaller ones --------------------------------------------------------------------------
@pytest.mark.parametrize("question", ["\u3164\u115f", "\u2800", "\u0301\u0302\u0303", " \u3164 \u2800 "])
def test_a_question_of_blank_letters_or_lone_marks_is_empty(serve, question):
    server = serve()
    r = httpx.post(f"{server.url}/ask", json={"question": question}, timeout=10)
    assert r.status_code == 422 and "empty" in r.text, r.text


def test_a_jsonl_of_many_bad_lines_lists_only_the_first_of_them(serve):
    server = serve()
    body = b'{"id": true}\n' * 5000 + JSONL_LINE % (7, 7, 7)
    r = httpx.post(
        f"{server.url}/articles/file",
        content=body,
        headers={**AUTH, "Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    assert len(r.json()["skipped"]) == 100 and r.json()["skipped_count"] == 5000


def test_a_one_article_file_too_large_to_be_within_the_limit_is_refused_before_it_arrives(serve):
    server = serve(max_article_chars=1000)
    sock = upload_head(server, b"Content-Length: 9000000\r\n")
    sock.sendall(b"<html><body>" + b"x" * 1000)  # the rest never comes: the length alone decides
    sock.close()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        b"POST /articles/file HTTP/1.1\r\nHost: t\r\nContent-Type: text/html\r\nContent-Length: 9000000\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n<html><body>"
    )
    received, seconds = read_until_closed(sock, 10)
    sock.close()
    assert received.startswith(b"HTTP/1.1 413") and b"one-article file" in received, received[:300]


def test_writes_refused_for_a_full_queue_say_so(tmp_path):
    state = AppState(Settings(index_dir=tmp_path, max_queued_requests=0))
    message = str(state.write_gate._refuse("1 request ahead"))
    assert "busy with other writes" in message and "answering" not in message, message


def test_a_server_whose_index_was_restored_recovers_without_a_restart(serve, tmp_path, seeds):
    index_dir = tmp_path / "restored"
    settings = Settings(index_dir=index_dir, seeds_dir=seeds)
    QAPipeline(settings, FakeEmbedder(), FakeReader()).build([seeds])
    (generation,) = [g.name for g in index_dir.glob("g*")]
    (index_dir / "CURRENT").unlink()
    server = serve(wait_ready=False, index_dir=index_dir)
    deadline = time.monotonic() + 30
    while health(server.url)[1].get("status") != "error" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health(server.url)[0] == 503
    store = IndexStore(index_dir, QAPipeline(settings, FakeEmbedder(), FakeReader()).spec)
    store.restore(generation)
    while health(server.url)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert health(server.url)[0] == 200
    assert (
        httpx.post(f"{server.url}/ask", json={"question": "When does New Start expire?"}, timeout=30).status_code == 200
    )


# ---- servers as processes of their own --------------------------------------------------------
class FakeServerProcess:
    def __init__(self, index_dir: Path, seeds: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        TEST_OUTPUT.mkdir(exist_ok=True)
        self.log = TEST_OUTPUT / f"{name}-{time.time_ns()}.log"
        env = {
            **os.environ,
            "QA_INDEX_DIR": str(index_dir),
            "QA_SEEDS_DIR": str(seeds),
            "QA_ADMIN_TOKEN": TOKEN,
            "QA_NO_ANSWER_THRESHOLD": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.fake_server", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while health(self.url)[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"fake server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def add(self, article_id: str, text: str) -> None:
        body = {"articles": [{"id": article_id, "title": article_id, "text": text}]}
        r = httpx.post(f"{self.url}/articles", json=body, headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def fake_servers():
    started: list[FakeServerProcess] = []

    def start(index_dir: Path, seeds: Path, name: str = "fake-server") -> FakeServerProcess:
        started.append(FakeServerProcess(index_dir, seeds, name))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def generation_of(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text().strip()


# ---- 5. a tantivy file cut short under a running server ---------------------------------------
def test_a_lexical_file_cut_short_under_a_running_server_does_not_kill_it(tmp_path, seeds, fake_servers):
    index_dir = tmp_path / "index"
    server = fake_servers(index_dir, seeds)
    server.add("zephyr", "The Zephyr probe reached Europa in 2031 after a long cruise.")
    lexical = generation_of(index_dir) / "lexical"
    segments = [p for p in lexical.iterdir() if p.suffix in (".idx", ".term", ".pos", ".store")]
    assert segments
    for path in segments:
        os.truncate(path, 0)
    for _ in range(3):  # answered (from the dense index) while the lexical one is rebuilt
        r = httpx.post(f"{server.url}/ask", json={"question": "When did Zephyr reach Europa?"}, timeout=30)
        assert r.status_code == 200, (r.text, server.log.read_text()[-2000:])
    assert server.proc.poll() is None, f"the server died ({server.proc.returncode})"
    deadline = time.monotonic() + 30
    while f"{lexical} built" not in server.log.read_text():  # rebuilt in the background
        assert time.monotonic() < deadline, server.log.read_text()[-3000:]
        time.sleep(0.2)
    log = server.log.read_text()
    assert "is damaged" in log and "cut short" in log
    r = httpx.post(f"{server.url}/ask", json={"question": "When did Zephyr reach Europa?"}, timeout=30)
    assert r.status_code == 200 and r.json()["answers"][0]["text"] == "2031"


# ---- 6. durability ----------------------------------------------------------------------------
def test_a_clean_stop_leaves_every_acknowledged_write_in_the_database_file(tmp_path, seeds, fake_servers):
    index_dir = tmp_path / "index"
    server = fake_servers(index_dir, seeds)
    server.add("kept", "A story from 2032 that must survive without its WAL.")
    server.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down, then re-raises the signal it caught
    assert server.proc.wait(30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text()
    store_file = generation_of(index_dir) / "store.sqlite"
    wal = store_file.with_name("store.sqlite-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    alone = tmp_path / "alone.sqlite"
    shutil.copy(store_file, alone)  # the database file by itself, no WAL beside it
    conn = sqlite3.connect(alone)
    assert conn.execute("SELECT count(*) FROM articles WHERE id = 'kept'").fetchone()[0] == 1
    conn.close()


def test_a_lost_wal_is_noticed_reported_and_the_derived_indexes_rebuilt(tmp_path, seeds, fake_servers, caplog):
    caplog.set_level(logging.ERROR)
    index_dir = tmp_path / "index"
    server = fake_servers(index_dir, seeds)
    server.add("lost", "A story from 2033 acknowledged and then lost with the WAL.")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    generation = generation_of(index_dir)
    assert json.loads((generation / "lexical.json").read_text())["seq"] > 0
    for name in ("store.sqlite-wal", "store.sqlite-shm"):
        (generation / name).unlink(missing_ok=True)
    settings = Settings(index_dir=index_dir, seeds_dir=seeds, no_answer_threshold=0.5)
    pipeline = QAPipeline(settings, FakeEmbedder(), FakeReader())
    pipeline.load()
    assert any("lost" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert "lost" not in {a.id for a in pipeline.articles()[0]}
    verdict = pipeline.store.check()
    assert "writes acknowledged after change" in verdict, verdict
    # the derived indexes agree with the database again
    assert json.loads((generation / "lexical.json").read_text())["seq"] == pipeline.store.generation().dense.seq
    assert pipeline.ask("When does New Start expire?").answers[0].text == "2021"
