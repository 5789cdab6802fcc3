"""Reading an index of format 1 (one folder per version: articles.jsonl, chunks.jsonl,
dense.faiss), so that upgrading converts it instead of dropping the articles it holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qa.types import Article, Batch, Chunk


def read_version(folder: Path, batch_size: int = 200) -> Iterator[Batch]:
    """The articles of a format-1 version with their passages and stored vectors, in batches."""
    import faiss

    articles = {}
    for line in (folder / "articles.jsonl").read_text(encoding="utf-8").splitlines():
        a = Article(**json.loads(line))
        articles[a.id] = a
    rows: dict[str, list[tuple[int, Chunk]]] = {aid: [] for aid in articles}
    for row, line in enumerate((folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines()):
        aid, start, end = json.loads(line)
        rows[aid].append((row, Chunk(row, aid, start, end, articles[aid].text[start:end])))
    index = faiss.read_index(str(folder / "dense.faiss"))
    vectors = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
    batch: Batch = []
    for aid, article in articles.items():
        own = rows[aid]
        batch.append((article, [c for _, c in own], vectors[[r for r, _ in own]].reshape(len(own), index.d)))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
