"""`qa serve` as a child process on a free port, ready (GET /healthz answers 200) when the
constructor returns: the one server starter of the tests and the benchmarks."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]


class ServerStartError(RuntimeError):
    """The server exited, could not load, or was not ready in time; the message has its log's tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str) -> tuple[int, dict]:
    """(status, body) of GET /healthz; (0, {}) when nothing answers."""
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


# prctl, looked up here: the child between fork and exec must not import (another thread of the
# parent may have held the import lock when it forked).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies, so that a
    benchmark or test killed midway (where no `with` block's exit runs) leaves no server behind
    taking a core from the next measurement. Linux only; elsewhere a no-op. (The signal follows
    the starting thread: start servers from the main thread.)"""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerProcess:
    """`python -m qa.cli serve` over `index_dir`, output to `log`. QA_ADMIN_TOKEN is `token`
    (none when None, whatever the environment says); `env` adds QA_* settings, `args` options of
    `qa serve` (e.g. `--ray ADDRESS --replicas 2`)."""

    def __init__(
        self,
        index_dir: Path | str,
        log: Path,
        token: str | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 300,
        args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.log = log
        full_env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.pop("QA_ADMIN_TOKEN", None)
        if token:
            full_env["QA_ADMIN_TOKEN"] = token
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.pid = self.proc.pid
        try:
            self._wait_ready(timeout_s)
        except ServerStartError:
            self.stop()
            raise

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise ServerStartError(f"server exited with {self.proc.returncode} before it was ready:\n{self.tail()}")
            status, body = health(self.url)
            if status == 200:
                return
            if body.get("status") == "error":
                raise ServerStartError(f"server could not load: {body.get('detail')}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"server not ready within {timeout_s:.0f} s (last /healthz {status} {body}):\n{self.tail()}"
                )
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

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
