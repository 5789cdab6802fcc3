"""A running server and the index on disk: other processes writing it, and a lost CURRENT."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from bench.server_process import ROOT, free_port, health
from tests.servers import TEST_OUTPUT

pytestmark = [pytest.mark.server, pytest.mark.real_models]


def test_the_server_follows_what_qa_ingest_adds_from_another_process(tmp_path, seed_index, start_server):
    index_dir = seed_index.copy_to(tmp_path / "index")
    token = "follow-test-token"
    server = start_server(index_dir, token)
    before = httpx.get(f"{server.url}/articles").json()["total"]
    article = tmp_path / "zephyr.txt"
    article.write_text(
        "Zephyr probe reaches Europa\n\nThe Zephyr probe reached Europa on 4 March 2031 after a six-year cruise.\n"
    )
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    subprocess.run([sys.executable, "-m", "qa.cli", "ingest", str(article)], cwd=ROOT, env=env, check=True, timeout=600)
    # No restart: the server's next request sees the new article.
    assert httpx.get(f"{server.url}/articles").json()["total"] == before + 1
    answer = httpx.post(
        f"{server.url}/ask", json={"question": "When did the Zephyr probe reach Europa?"}, timeout=120
    ).json()
    assert answer["answers"] and "2031" in answer["answers"][0]["text"]
    assert answer["answers"][0]["article"]["title"] == "Zephyr probe reaches Europa"
    # and its own writes still work on top of it (they used to answer 500 from then on)
    r = httpx.post(
        f"{server.url}/articles",
        json={"articles": [{"title": "Later", "text": "A later note from 2032."}]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
    )
    assert r.status_code == 201, r.text
    assert httpx.get(f"{server.url}/articles").json()["total"] == before + 2


def test_a_lost_current_pointer_is_reported_and_nothing_is_rebuilt_over_the_generations(tmp_path, seed_index):
    index_dir = seed_index.copy_to(tmp_path / "index")
    (generation,) = [g.name for g in index_dir.glob("g*")]
    size_before = (index_dir / generation / "store.sqlite").stat().st_size
    (index_dir / "CURRENT").unlink()
    port = free_port()
    log = TEST_OUTPUT / f"lost-current-{port}.log"
    TEST_OUTPUT.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "QA_INDEX_DIR": str(index_dir)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 300
            status = 0
            body: dict = {}
            while time.monotonic() < deadline:
                status, body = health(f"http://127.0.0.1:{port}")
                if body.get("status") in ("error", "ready"):
                    break
                time.sleep(0.5)
            assert status == 503 and body["status"] == "error", body
            assert f"qa index --restore {generation}" in body["detail"]
        finally:
            proc.terminate()
            proc.wait(30)
    assert sorted(x.name for x in index_dir.glob("g*")) == [generation]
    assert (index_dir / generation / "store.sqlite").stat().st_size == size_before
    assert not (index_dir / "CURRENT").exists()
    # the CLI says the same, and the command it names brings the index back
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    asked = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", "When does New START expire?"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert asked.returncode == 2 and f"qa index --restore {generation}" in asked.stderr
    restored = subprocess.run(
        [sys.executable, "-m", "qa.cli", "index", "--restore", generation],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restored.returncode == 0, restored.stderr
    assert "164 articles" in restored.stdout
