"""The product as `pip install` gives it: the wheel built from this checkout, installed into a
fresh virtualenv and run from a folder outside the checkout, ships the chat page, the bundled
articles and the reader, and answers.

The fresh virtualenv sees the dependencies already installed for the tests (a .pth file naming
this interpreter's site-packages) instead of downloading torch again; `qa` itself is only the
wheel's (checked). To stay near a minute, the index in the user's data folder is a copy of the
session's seed index instead of a second build of it; that the wheel's own articles are found and
read is checked apart, without the models.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.server_process import free_port as _free_port
from bench.server_process import health as _health
from tests.servers import ROOT, TEST_OUTPUT, SeedIndex

pytestmark = [pytest.mark.wheel, pytest.mark.server]

QUESTION = "When does New START expire?"
START_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the wheel of this checkout; returns its bin/ folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = _clean_env()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp / "dist"),
            str(ROOT),
        ],
        env=env,
        check=True,
    )
    (wheel,) = (tmp / "dist").glob("newsqa-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env, check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Path lines only: the .pth files there (the checkout's editable install) are not run.
    Path(purelib, "test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        env=env,
        check=True,
    )
    return venv / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user: no PYTHONPATH pointing at the checkout, no QA_* settings."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("QA_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def test_the_wheel_ships_the_page_and_the_articles(installed: Path, tmp_path: Path) -> None:
    from qa.ingest.files import ingest_paths

    probe = (
        "import json, qa; from qa.config import Settings; from qa.resources import WEB_DIR; "
        "from qa.ingest.files import ingest_paths; s = Settings(); "
        "print(json.dumps({'qa': qa.__file__, 'web': str(WEB_DIR), 'seeds': str(s.seeds_dir), "
        "'index': str(s.index_dir), 'ids': sorted(a.id for a in ingest_paths([s.seeds_dir]).articles)}))"
    )
    out = subprocess.run(
        [str(installed / "python"), "-c", probe],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env=_clean_env(XDG_DATA_HOME=str(tmp_path / "data")),
    ).stdout
    found = json.loads(out)
    package = Path(found["qa"]).parent
    assert package.is_relative_to(installed.parent), f"qa was imported from {package}, not the wheel"
    assert Path(found["web"]) == package / "web" and (package / "web" / "templates" / "index.html").is_file()
    assert Path(found["seeds"]) == package / "seeds" / "articles"
    assert Path(found["index"]) == tmp_path / "data" / "newsqa" / "index"
    checkout_ids = sorted(a.id for a in ingest_paths([ROOT / "seeds" / "articles"]).articles)
    assert found["ids"] == checkout_ids and len(checkout_ids) > 100


def test_the_wheel_answers_and_serves_the_page_from_any_folder(
    installed: Path, seed_index: SeedIndex, tmp_path: Path
) -> None:
    # The default index folder of an installed `qa` is the user's data folder, not the checkout's.
    seed_index.copy_to(tmp_path / "data" / "newsqa" / "index")
    env = _clean_env(XDG_DATA_HOME=str(tmp_path / "data"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    TEST_OUTPUT.mkdir(exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(TEST_OUTPUT / f"wheel-server-{port}.log", "wb") as log:
        server = subprocess.Popen(
            [str(installed / "qa"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=elsewhere,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # Asked while the server loads its models: the two start side by side.
            ask = subprocess.run(
                [str(installed / "qa"), "ask", QUESTION],
                cwd=elsewhere,
                env=env,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S,
            )
            assert ask.returncode == 0, ask.stderr[-3000:]
            assert ask.stdout.splitlines()[0].startswith("1. 2021 "), ask.stdout
            # The wheel carries no ONNX copies (made after installing): `qa` says how to make them.
            assert "`qa export-reader --recipe int8` makes the int8 one" in ask.stderr, ask.stderr[-3000:]
            assert "`qa export-embedder` makes one" in ask.stderr, ask.stderr[-3000:]

            deadline = time.monotonic() + START_TIMEOUT_S
            while _health(url)[0] != 200:
                assert server.poll() is None, f"qa serve exited with {server.returncode}; see {log.name}"
                assert time.monotonic() < deadline, f"qa serve not ready in {START_TIMEOUT_S} s; see {log.name}"
                time.sleep(0.5)

            with urllib.request.urlopen(f"{url}/", timeout=10) as res:
                page = res.read().decode()
            assert res.status == 200 and "<title>News QA</title>" in page and "/static/app.js" in page
            with urllib.request.urlopen(f"{url}/static/app.js", timeout=10) as res:
                assert res.status == 200 and res.read() == (ROOT / "web" / "static" / "app.js").read_bytes()
            request = urllib.request.Request(
                f"{url}/ask",
                data=json.dumps({"question": QUESTION}).encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as res:
                assert json.loads(res.read())["answers"][0]["text"] == "2021"
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(15)
