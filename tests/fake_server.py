"""`qa serve` over the fake models, as a process of its own (for tests that kill or signal a
server, or that a crash of it must not take the test run down): python -m tests.fake_server
PORT; settings from QA_* variables, as `qa serve` reads them."""

from __future__ import annotations

import logging
import sys

from qa.config import Settings
from qa.pipeline import QAPipeline
from qa.serve.app import create_app
from qa.serve.server import serve
from tests.fakes import FakeEmbedder, FakeReader

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # as `qa serve` logs
    settings = Settings()
    pipeline = QAPipeline(settings, FakeEmbedder(), FakeReader())
    serve(create_app(settings, pipeline), settings, "127.0.0.1", int(sys.argv[1]))
