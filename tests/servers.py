"""Fixtures with the real parts: the seed index (built once per test session), a pipeline over
it, real `qa serve` processes (started by bench.server_process, as the benchmarks start theirs), and
an in-process server over fake models for the fast tier's tests of the HTTP layer."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench.server_process import ServerProcess, ServerStartError, free_port, health

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


def start_server_process(
    index_dir: Path,
    token: str | None = None,
    env: dict[str, str] | None = None,
    name: str = "server",
    args: Sequence[str] = (),
) -> ServerProcess:
    """A ready `qa serve [args]` process (bench.server_process), its log in test-output/; a failed start fails the
    test."""
    try:
        return ServerProcess(
            index_dir, TEST_OUTPUT / f"{name}-{time.time_ns()}.log", token, env, SERVER_START_TIMEOUT_S, args
        )
    except ServerStartError as exc:
        pytest.fail(str(exc))


class InProcessServer:
    """The app over fake models, served by the same uvicorn set-up as `qa serve`
    (qa.serve.server.uvicorn_config) in a thread of the test process: real sockets, fast.
    Ready when /healthz answers 200 (or, without `wait_ready`, answers at all: 503)."""

    def __init__(self, settings, pipeline, wait_ready: bool = True) -> None:
        import uvicorn

        from qa.serve.app import create_app
        from qa.serve.server import uvicorn_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, pipeline)
        self.server = uvicorn.Server(uvicorn_config(self.app, settings, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while health(self.url)[0] != (200 if wait_ready else 503):
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                pytest.fail(f"in-process server not ready: {health(self.url)}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


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
    from qa.loading import configure_torch_threads
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
        server = start_server_process(index_dir, token, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
