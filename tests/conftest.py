"""Shared fixtures. The real-part fixtures (seed index, pipeline, server processes) live in
tests/servers.py; `live_server` is one real `qa serve` process shared by the HTTP and browser tests."""

from __future__ import annotations

import secrets

import pytest

pytest.register_assert_rewrite("tests.servers")
from tests.servers import SeedIndex, start_server_process  # noqa: E402

pytest_plugins = ["tests.servers"]


@pytest.fixture(scope="session")
def live_server(seed_index: SeedIndex, tmp_path_factory: pytest.TempPathFactory):
    """A `qa serve` process over a copy of the seed index, with a random admin token.
    It has .url, .token, .log and .pid; stopped at the end of the session."""
    index_dir = seed_index.copy_to(tmp_path_factory.mktemp("live-index"))
    server = start_server_process(index_dir, secrets.token_urlsafe(24), name="live-server")
    yield server
    server.stop()
