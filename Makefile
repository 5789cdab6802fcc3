# Two commands do all the set-up on a fresh machine:
#   make run    install, then serve the chat page on the bundled articles (index built on first start)
#   make test   install, then run the whole test suite (real models, a real server, a real browser)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-fast lint browser bench eval-news clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $@

# The reader as ONNX, made from the shipped weights: float32 (the same answers as PyTorch) and
# int8 (F1 within 0.5 end to end, read ~1.6x faster on 2 AVX2 cores); QA_READER_BACKEND=auto
# times them against PyTorch at start and reads with the fastest.
qa/reader_model/model.%.onnx: $(VENV)/.installed qa/reader_model/model.safetensors
	$(VENV)/bin/qa export-reader --recipe $*

# The embedder as ONNX: float32 for questions, the same vectors as PyTorch in a third of the time
# for one question (QA_QUERY_ENCODER=auto takes it when it is there); int8 for passages at
# ingest when QA_PASSAGE_EMBEDDER=onnx-int8 (faster bulk ingest; docs/benchmark-notes.md).
qa/query_encoder/query.%.onnx: $(VENV)/.installed
	$(VENV)/bin/qa export-embedder --recipe $*

# The reader for CTranslate2 (int8): a folder, made the same way.
qa/reader_model/ct2-int8/model.bin: $(VENV)/.installed qa/reader_model/model.safetensors
	$(VENV)/bin/qa export-reader --recipe ct2-int8

install: $(VENV)/.installed qa/reader_model/model.fp32.onnx qa/reader_model/model.int8.onnx qa/reader_model/ct2-int8/model.bin qa/query_encoder/query.fp32.onnx qa/query_encoder/query.int8.onnx

run: install
	$(VENV)/bin/qa serve --host $(HOST) --port $(PORT)

# Debian's chromium for the browser test (root installs it; otherwise that test is skipped).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: could not install chromium; the browser test will be skipped"

test: install browser
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not real_models and not server and not browser and not wheel"

# ruff (lint and format) and mypy, configured in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The news guard CI runs: the news benchmark's test split over the bundled articles and a slice
# of the Reuters archive (../shared/data), read in int8 as most laptops do; fails when F1, follow-up
# F1 or no-answer precision falls below the 95% interval of bench/news/baseline.json.
NEWS_READER ?= onnx-int8
eval-news: install
	QA_READER_BACKEND=$(NEWS_READER) $(PY) -m bench.news_eval --split test --archive slice --guard bench/news/baseline.json

bench: install
	$(PY) -m bench.run_all --squad-dev ../shared/data/squad/dev-v1.1.json

clean:
	rm -rf $(VENV) index/v* index/CURRENT test-output eval-out .mypy_cache .ruff_cache
