"""Crash safety: a process killed while it adds articles leaves an index that loads, holding
the state from before or after the addition, never a mix."""

import os
import signal
import subprocess
import sys
import textwrap
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
    from qa.index import IndexStore
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


@pytest.mark.server
@pytest.mark.real_models
def test_sigkill_during_an_upload_then_restart(tmp_path, seed_index, start_server):
    index_dir = tmp_path / "index"
    seed_index.copy_to(index_dir)
    token = "crash-test-token"
    articles = [{"id": f"bulk{i}", "title": f"Bulk {i}", "text": f"Filler article {i}. " * 300} for i in range(60)]
    for delay in (0.5, 2.0):
        server = start_server(index_dir, token)
        before = len(httpx.get(f"{server.url}/articles").json())
        request = subprocess.Popen([sys.executable, "-c", (
            "import httpx, json, sys; httpx.post(sys.argv[1] + '/articles', json=json.loads(sys.stdin.read()), "
            "headers={'Authorization': 'Bearer ' + sys.argv[2]}, timeout=300)"), server.url, token],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        request.stdin.write(__import__("json").dumps({"articles": articles}).encode())
        request.stdin.close()
        time.sleep(delay)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        request.wait(60)
        restarted = start_server(index_dir, token)
        try:
            after = len(httpx.get(f"{restarted.url}/articles").json())
            assert after in (before, before + len(articles)), (before, after)
            answer = httpx.post(f"{restarted.url}/ask", json={"question": "When does New START expire?"}, timeout=60).json()
            assert answer["answers"][0]["text"] == "2021"
        finally:
            restarted.stop()
        # Clean up the bulk articles for the next round, if they landed.
        if after != before:
            cleaner = start_server(index_dir, token)
            for a in articles:
                httpx.delete(f"{cleaner.url}/articles/{a['id']}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
            cleaner.stop()
