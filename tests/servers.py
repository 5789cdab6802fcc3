"""Fixtures with the real parts: the seed index (built once per test session), a pipeline over
it, and real `qa serve` processes."""

from __future__ import annotations

import json
import os
import shutil
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


class SeedIndex:
    """The index of the bundled articles, built once; tests get their own copies."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def copy_to(self, target: Path) -> Path:
        shutil.copytree(self.path, target, dirs_exist_ok=True)
        return target


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


class ServerProcess:
    """`python -m qa.cli serve` on a free port, its output in test-output/; ready on return."""

    def __init__(self, index_dir: Path, token: str | None, env: dict[str, str] | None = None, name: str = "server") -> None:
        TEST_OUTPUT.mkdir(exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.log = TEST_OUTPUT / f"{name}-{self.port}.log"
        full_env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.pop("QA_ADMIN_TOKEN", None)
        if token:
            full_env["QA_ADMIN_TOKEN"] = token
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid
        self._wait_ready()

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode} before it was ready:\n{self._tail()}")
            status, body = _health(self.url)
            if status == 200:
                return
            if body.get("status") == "error":
                self.stop()
                pytest.fail(f"server could not load: {body.get('detail')}\n{self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"server not ready within {SERVER_START_TIMEOUT_S:.0f} s (last /healthz {status} {body}):\n{self._tail()}")
            time.sleep(0.5)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._log_file.close()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._log_file.close()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> SeedIndex:
    from qa.config import Settings
    from qa.pipeline import QAPipeline

    path = tmp_path_factory.mktemp("seed-index")
    QAPipeline(Settings(index_dir=path)).build([Settings().seeds_dir])
    return SeedIndex(path)


@pytest.fixture(scope="session")
def seed_pipeline(seed_index: SeedIndex, tmp_path_factory: pytest.TempPathFactory):
    from qa.config import Settings
    from qa.models import configure_torch_threads
    from qa.pipeline import QAPipeline

    settings = Settings(index_dir=seed_index.copy_to(tmp_path_factory.mktemp("pipeline-index")))
    configure_torch_threads(settings.threads)
    pipeline = QAPipeline(settings)
    pipeline.load()
    return pipeline


@pytest.fixture
def start_server():
    """A factory: start_server(index_dir, token) -> ServerProcess; all are stopped afterwards."""
    started: list[ServerProcess] = []

    def start(index_dir: Path, token: str | None = None, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(index_dir, token, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
