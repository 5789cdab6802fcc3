"""The on-disk index: articles, chunks, a FAISS inner-product index and a versioned manifest.

Layout under index_dir:
    CURRENT            name of the live version folder, swapped atomically (os.replace)
    v000007/           one complete version: manifest.json, articles.jsonl, chunks.jsonl, dense.faiss
A write builds a new version folder, fsyncs it, then points CURRENT at it. A crash at any
moment leaves CURRENT naming a complete version, so the index loads as it was before or after.
The manifest records a SHA-256 per file; a truncated or altered file is detected on load.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa.errors import QAError
from qa.types import Article, Chunk

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILES = ("articles.jsonl", "chunks.jsonl", "dense.faiss")
REBUILD_HINT = "rebuild it with: qa index --rebuild"


class QAIndexError(QAError, RuntimeError):
    """Base for index problems."""


class IndexNotFoundError(QAIndexError):
    pass


class IndexCorruptError(QAIndexError):
    pass


class IndexMismatchError(QAIndexError):
    """The index was built with another embedder or other chunking settings."""


class IndexConflictError(QAIndexError):
    """Another process changed the index on disk since this one loaded it."""


@dataclass(frozen=True)
class IndexSpec:
    """What the vectors and chunks depend on; an index is only usable under the same spec."""

    embedder: str
    dim: int
    chunk_size: int
    chunk_overlap: int


@dataclass
class IndexData:
    """One immutable version of the index, as held in memory."""

    spec: IndexSpec
    articles: dict[str, Article]
    chunks: list[Chunk]  # chunk.id == row == FAISS id
    vectors: np.ndarray  # (n_chunks, dim) float32, L2-normalised
    version: str | None = None  # the on-disk version this data was loaded from or derives from

    def faiss_index(self):
        import faiss

        index = faiss.IndexFlatIP(self.spec.dim)
        if len(self.vectors):
            index.add(self.vectors)
        return index


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def current_file(self) -> Path:
        return self.root / "CURRENT"

    def exists(self) -> bool:
        return self.current_file.is_file()

    def _current_dir(self) -> Path:
        if not self.exists():
            raise IndexNotFoundError(f"no index at {self.root}; build one with: qa index")
        name = self.current_file.read_text().strip()
        folder = self.root / name
        if not name.startswith("v") or not folder.is_dir():
            raise IndexCorruptError(f"index at {self.root} points to a missing version {name!r}; {REBUILD_HINT}")
        return folder

    def load(self, expected: IndexSpec | None = None) -> IndexData:
        import faiss

        folder = self._current_dir()
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            if manifest.get("format_version") != FORMAT_VERSION:
                raise IndexMismatchError(
                    f"index format {manifest.get('format_version')} is not the supported {FORMAT_VERSION}; {REBUILD_HINT}"
                )
            spec = IndexSpec(**manifest["spec"])
            hashes = dict(manifest["sha256"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IndexCorruptError(f"index manifest in {folder} is unreadable ({exc}); {REBUILD_HINT}") from exc
        if expected is not None and spec != expected:
            diffs = ", ".join(
                f"{k}: index has {getattr(spec, k)!r}, settings ask {getattr(expected, k)!r}"
                for k in asdict(spec)
                if getattr(spec, k) != getattr(expected, k)
            )
            raise IndexMismatchError(f"index at {self.root} was built with other settings ({diffs}); {REBUILD_HINT}")
        for name in FILES:
            path = folder / name
            if not path.is_file() or _sha256(path) != hashes.get(name):
                raise IndexCorruptError(f"index file {path} is missing, truncated or altered; {REBUILD_HINT}")
        try:
            articles = {}
            for line in (folder / "articles.jsonl").read_text(encoding="utf-8").splitlines():
                a = Article(**json.loads(line))
                articles[a.id] = a
            chunks = []
            for row, line in enumerate((folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines()):
                aid, start, end = json.loads(line)
                chunks.append(Chunk(row, aid, start, end, articles[aid].text[start:end]))
            index = faiss.read_index(str(folder / "dense.faiss"))
            vectors = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, spec.dim), np.float32)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexCorruptError(f"index in {folder} is inconsistent ({exc}); {REBUILD_HINT}") from exc
        if len(vectors) != len(chunks):
            raise IndexCorruptError(f"index in {folder} has {len(vectors)} vectors for {len(chunks)} chunks; {REBUILD_HINT}")
        return IndexData(spec, articles, chunks, np.ascontiguousarray(vectors, dtype=np.float32), folder.name)

    def save(self, data: IndexData, expect_current: bool = True) -> str:
        """Write `data` as a new version and make it current; returns the version's name.

        With expect_current, refuses (IndexConflictError) when another process has made a
        different version current since `data.version` was loaded: writing would drop its change.
        """
        import faiss

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "LOCK", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time, across processes
            previous = self.current_file.read_text().strip() if self.exists() else None
            if expect_current and previous != data.version:
                raise IndexConflictError(
                    f"the index at {self.root} was changed by another process since it was loaded "
                    f"(now {previous}, loaded {data.version}); restart to load it, then try again"
                )
            for stale in self.root.glob(".tmp-*"):  # left by a crash mid-write
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
            number = int(previous[1:]) + 1 if previous and previous[1:].isdigit() else 1
            name = f"v{number:06d}"
            tmp = self.root / f".tmp-{name}-{os.getpid()}"
            tmp.mkdir()
            with open(tmp / "articles.jsonl", "w", encoding="utf-8") as fh:
                for a in data.articles.values():
                    fh.write(json.dumps(asdict(a), ensure_ascii=False) + "\n")
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
                for c in data.chunks:
                    fh.write(json.dumps([c.article_id, c.start, c.end]) + "\n")
            faiss.write_index(data.faiss_index(), str(tmp / "dense.faiss"))
            manifest = {
                "format_version": FORMAT_VERSION,
                "spec": asdict(data.spec),
                "counts": {"articles": len(data.articles), "chunks": len(data.chunks)},
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "sha256": {n: _sha256(tmp / n) for n in FILES},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            for name_ in [*FILES, "manifest.json"]:
                with open(tmp / name_, "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(tmp)
            final = self.root / name
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            _fsync_dir(self.root)
            pointer = self.root / f".tmp-CURRENT-{os.getpid()}"
            pointer.write_text(name + "\n")
            with open(pointer, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(pointer, self.current_file)  # the commit point
            _fsync_dir(self.root)
            # Keep the previous version until the next write, in case the new one's blocks did
            # not reach the disk; anything older goes.
            for old in self.root.glob("v*"):
                if old.name not in (name, previous) and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
        log.info("index %s written: %d articles, %d chunks", name, len(data.articles), len(data.chunks))
        return name


def empty_index(spec: IndexSpec) -> IndexData:
    return IndexData(spec, {}, [], np.zeros((0, spec.dim), dtype=np.float32))


def with_articles(data: IndexData, articles: list[Article], chunks_by_article: dict[str, list[Chunk]], vectors: np.ndarray) -> IndexData:
    """A new version with the articles added (or replaced, by id); only new chunks were embedded."""
    replaced = {a.id for a in articles if a.id in data.articles}
    base = without_articles(data, replaced) if replaced else data
    rows = list(base.chunks)
    new_articles = dict(base.articles)
    offset = 0
    for article in articles:
        new_articles[article.id] = article
        for c in chunks_by_article[article.id]:
            rows.append(Chunk(len(rows), c.article_id, c.start, c.end, c.text))
            offset += 1
    if offset != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {offset} new chunks")
    vectors_out = np.concatenate([base.vectors, vectors]) if len(vectors) else base.vectors
    return IndexData(data.spec, new_articles, rows, vectors_out, data.version)


def without_articles(data: IndexData, article_ids: set[str]) -> IndexData:
    """A new version without those articles; kept vectors are reused, chunk rows renumbered."""
    keep = [i for i, c in enumerate(data.chunks) if c.article_id not in article_ids]
    chunks = [Chunk(n, data.chunks[i].article_id, data.chunks[i].start, data.chunks[i].end, data.chunks[i].text) for n, i in enumerate(keep)]
    articles = {k: v for k, v in data.articles.items() if k not in article_ids}
    return IndexData(data.spec, articles, chunks, data.vectors[keep], data.version)
