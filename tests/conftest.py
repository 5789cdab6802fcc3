"""Shared fixtures. `live_server`: a real `qa serve` process on a free port, for HTTP and browser tests."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_OUTPUT = ROOT / "test-output"
SERVER_START_TIMEOUT_S = float(os.environ.get("QA_TEST_SERVER_TIMEOUT", "300"))


class LiveServer(str):
    """The base URL of the running server (a str, e.g. "http://127.0.0.1:8123"), with
    .url (the same), .token (its QA_ADMIN_TOKEN) and .log (the file its output goes to)."""

    url: str
    token: str
    log: Path

    def __new__(cls, url: str, token: str, log: Path) -> "LiveServer":
        obj = super().__new__(cls, url)
        obj.url = url
        obj.token = token
        obj.log = log
        return obj


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as res:
            return res.status, json.loads(res.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, {}


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    """Start `python -m qa.cli serve` with its own index (built from the bundled seeds on first
    start) and an admin token; wait for /healthz 200; stop it at the end of the session."""
    TEST_OUTPUT.mkdir(exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    log_path = TEST_OUTPUT / "server-stderr.log"
    env = dict(os.environ)
    env["QA_INDEX_DIR"] = str(tmp_path_factory.mktemp("qa-index"))
    env["QA_ADMIN_TOKEN"] = token
    env.setdefault("PYTHONUNBUFFERED", "1")
    # QA_READER_PATH, if set, passes through with the rest of the environment.

    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode} before it was ready; "
                            f"its output ({log_path}):\n{_tail(log_path)}")
            status, body = _health(url)
            if status == 200:
                break
            if body.get("status") == "error":
                pytest.fail(f"the server could not load: {body.get('detail')}\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"the server was not ready within {SERVER_START_TIMEOUT_S:.0f} s "
                            f"(last /healthz: {status} {body}); its output ({log_path}):\n{_tail(log_path)}")
            time.sleep(1)
        yield LiveServer(url, token, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log_file.close()


@pytest.fixture(scope="session")
def admin_token(live_server: LiveServer) -> str:
    """The QA_ADMIN_TOKEN the live server was started with (send as Authorization: Bearer ...)."""
    return live_server.token
