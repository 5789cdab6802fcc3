"""Crash safety: a process killed while it adds articles leaves an index that loads, holding
the state from before or after the addition, never a mix."""

import os
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

from tests.fakes import FakeEmbedder, FakeReader

CHILD = textwrap.dedent(
    """
    import os, sys
    from qa.config import Settings
    from qa.index.store import IndexStore
    from qa.pipeline import QAPipeline
    from qa.types import Article
    from tests.fakes import FakeEmbedder, FakeReader

    crash_at = sys.argv[2]
    real_replace = os.replace

    def dying_replace(src, dst):
        if crash_at == "before-commit" and str(dst).endswith("CURRENT"):
            os._exit(9)  # killed with the new version written but not yet current
        real_replace(src, dst)
        if crash_at == "after-commit" and str(dst).endswith("CURRENT"):
            os._exit(9)  # killed after the commit point, before old versions are cleaned up

    os.replace = dying_replace
    settings = Settings(index_dir=sys.argv[1], chunk_size=200, chunk_overlap=50, no_answer_threshold=0.5)
    p = QAPipeline(settings, FakeEmbedder(), FakeReader())
    p.load()
    p.add_articles([Article(f"new{i}", f"New {i}", f"Fresh article number {i} from 2030.") for i in range(5)])
    """
)


def base_pipeline(tmp_path):
    settings = Settings(index_dir=tmp_path / "index", chunk_size=200, chunk_overlap=50, no_answer_threshold=0.5)
    p = QAPipeline(settings, FakeEmbedder(), FakeReader())
    from qa.types import Article

    p.build_from_articles([Article("old", "Old", "New Start is set to expire in 2021.")])
    return p


@pytest.mark.parametrize("crash_at,expected", [("before-commit", {"old"}), ("after-commit", {"old", "new0", "new1", "new2", "new3", "new4"})])
def test_killed_mid_write_loads_before_or_after(tmp_path, crash_at, expected):
    p = base_pipeline(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(p.settings.index_dir), crash_at], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    reloaded = QAPipeline(p.settings, FakeEmbedder(), FakeReader())
    reloaded.load()
    assert set(reloaded.state.data.articles) == expected
    assert reloaded.ask("When does New Start expire?").answers[0].text == "2021"
    reloaded.add_articles([])  # the next write cleans up what the crash left
    left = sorted(os.listdir(p.settings.index_dir))
    assert not [d for d in left if d.startswith(".tmp")]
    current = (p.settings.index_dir / "CURRENT").read_text().strip()
    assert current in left and len([d for d in left if d.startswith("v")]) <= 2  # current + previous


def _upload_in_background(url: str, token: str, articles: list[dict]) -> threading.Thread:
    def post():
        try:
            httpx.post(f"{url}/articles", json={"articles": articles}, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        except httpx.HTTPError:
            pass  # the server is killed under it

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


@pytest.mark.server
@pytest.mark.real_models
@pytest.mark.parametrize("moment", ["while embedding", "while writing the new version"])
def test_sigkill_during_an_upload_then_restart(tmp_path, seed_index, start_server, moment):
    index_dir = seed_index.copy_to(tmp_path / "index")
    token = "crash-test-token"
    articles = [{"id": f"bulk{i}", "title": f"Bulk {i}", "text": f"Filler article {i} about the harbour. " * 80} for i in range(30)]
    server = start_server(index_dir, token)
    before = len(httpx.get(f"{server.url}/articles").json())
    upload = _upload_in_background(server.url, token, articles)
    if moment == "while embedding":
        time.sleep(1.0)
    else:
        deadline = time.monotonic() + 300
        while not list(index_dir.glob(".tmp-v*")) and upload.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    upload.join(30)

    restarted = start_server(index_dir, token)
    after = len(httpx.get(f"{restarted.url}/articles").json())
    assert after in (before, before + len(articles)), (before, after)
    answer = httpx.post(f"{restarted.url}/ask", json={"question": "When does New START expire?"}, timeout=60).json()
    assert answer["answers"][0]["text"] == "2021"
