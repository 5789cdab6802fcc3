"""The dense index: FAISS over passage vectors, keyed by stable passage ids.

Derived data: the vectors table in SQLite is the truth, and this index is a cache of it that
says which change (`seq`) it covers. A process loads the newest checkpoint file and replays
the change log past it, so a start costs the checkpoint's size plus the changes since, and a
write costs its own passages. A checkpoint that is missing, altered or stale is rebuilt from
the vectors table (O(n), logged).

Kinds, chosen by archive size and recorded in the checkpoint:
- flat: exact inner product (IndexIDMap2 over IndexFlatIP) while n < ivf_threshold;
  search O(n·d), add O(m), remove O(n).
- ivf: IndexIVFScalarQuantizer (SQ8, 1 byte a dimension) with nlist ≈ 4·sqrt(n) lists and a
  hash-table direct map; search O(n·nprobe/nlist·d) plus an exact rescoring of 4·k candidates
  from the stored vectors, add O(m·nlist·d), remove O(m). Trained on a sample when the archive
  first passes the threshold and again when it has grown 4x since (amortised O(1) a passage).
  Recall@10 against exact search is measured in bench/scale.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.index import db

if TYPE_CHECKING:
    import faiss

    from qa.config import Settings

log = logging.getLogger(__name__)

CHECKPOINT = "dense.json"
RERANK = 4  # IVF candidates per result, rescored exactly (see DenseIndex.search)


@dataclass(frozen=True)
class DenseSettings:
    ivf_threshold: int = 50_000  # passages; below it search is exact
    nprobe: int = 24
    checkpoint_every: int = 2_000  # changes since the last checkpoint before the next is written
    checkpoint_fraction: float = 0.05  # ... or this share of the archive, whichever is larger

    @classmethod
    def of(cls, settings: Settings) -> DenseSettings:
        """The dense index's part of the settings (QA_IVF_THRESHOLD, QA_IVF_NPROBE, QA_DENSE_CHECKPOINT_EVERY)."""
        return cls(settings.ivf_threshold, settings.ivf_nprobe, settings.dense_checkpoint_every)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or a folder by name (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DenseIndex:
    """One process's FAISS index for one generation. Thread-safe: `lock` guards every use."""

    def __init__(self, folder: Path, dim: int, settings: DenseSettings) -> None:
        self.folder, self.dim, self.settings = folder, dim, settings
        self.lock = threading.Lock()
        self._index: faiss.Index | None = None
        self.kind = "flat"
        self.trained_at = 0  # passages when the IVF quantiser was trained
        self.seq = 0  # the last change this index reflects
        self._epoch: str | None = None  # identity of the checkpoint this process loaded (to notice a retrain)

    @property
    def index(self) -> faiss.Index:
        """The loaded FAISS index (load() or rebuild() first)."""
        if self._index is None:
            raise RuntimeError("the dense index is not loaded")
        return self._index

    # ---- building -----------------------------------------------------------------------------
    def _empty(self, kind: str) -> faiss.Index:
        import faiss

        self.kind = kind
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        raise ValueError(kind)

    def _train_ivf(self, conn: sqlite3.Connection, n: int) -> faiss.Index:
        import faiss

        nlist = max(16, int(4 * math.sqrt(n)))
        sample_size = min(n, 32 * nlist)
        # An evenly spaced sample of the vectors table; the id order is insertion order.
        ids, sample = [], []
        step = max(1, n // sample_size)
        for batch_ids, batch in db.iter_vectors(conn, self.dim):
            take = np.arange(0, len(batch_ids), step)
            sample.append(batch[take])
            ids.append(batch_ids[take])
        train = np.ascontiguousarray(np.vstack(sample)[:sample_size], np.float32)
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        # 32 points a list and 10 k-means rounds: training a 1M-passage archive's 4,000 lists
        # takes about a minute on 2 cores instead of ten, for recall measured in bench/scale.py.
        index.cp.max_points_per_centroid = 32
        index.cp.niter = 10
        t0 = time.perf_counter()
        index.train(train)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # in faiss, not in its stub  # remove_ids in O(removed)
        index.nprobe = min(self.settings.nprobe, nlist)
        log.info(
            "trained IVF-SQ8 with %d lists on %d of %d passages in %.1f s",
            nlist,
            len(train),
            n,
            time.perf_counter() - t0,
        )
        self.kind, self.trained_at = "ivf", n
        return index

    def rebuild(self, conn: sqlite3.Connection) -> None:
        """Build from the vectors table in `conn`'s current (read) transaction: O(n)."""
        seq = int(db.get_meta(conn, "seq"))
        _, n = db.counts(conn)
        index = self._train_ivf(conn, n) if n >= self.settings.ivf_threshold else self._empty("flat")
        if self.kind == "flat":
            self.trained_at = 0
        for ids, vectors in db.iter_vectors(conn, self.dim):
            index.add_with_ids(vectors, ids)
        self._index, self.seq = index, seq

    # ---- loading and following ---------------------------------------------------------------
    def load(self, conn: sqlite3.Connection) -> None:
        """Load the newest checkpoint and replay the changes since; rebuild if it is unusable."""
        import faiss

        meta = self._read_checkpoint()
        index = None
        if meta is not None:
            path = self.folder / meta["file"]
            try:
                if _sha256(path) != meta["sha256"]:
                    raise ValueError("checksum differs")
                index = faiss.read_index(str(path))
                if index.d != self.dim:
                    raise ValueError(f"dimension {index.d}, expected {self.dim}")
                if int(meta["seq"]) < db.log_floor(conn):
                    raise ValueError(f"it covers seq {meta['seq']}, and the change log after it was pruned")
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("dense checkpoint %s is unusable (%s): rebuilding it from the stored vectors", path, exc)
                index = None
        if index is None or meta is None:
            self.rebuild(conn)
            self._epoch = None
            return
        self._index, self.kind, self.trained_at, self.seq = (
            index,
            meta["kind"],
            int(meta["trained_at"]),
            int(meta["seq"]),
        )
        if self.kind == "ivf":
            faiss.extract_index_ivf(index).nprobe = min(self.settings.nprobe, faiss.extract_index_ivf(index).nlist)
        self._epoch = meta["file"]
        self.catch_up(conn)

    def catch_up(self, conn: sqlite3.Connection) -> int:
        """Apply the changes past `self.seq` up to the snapshot `conn` reads; returns how many.
        Call with `lock` held and `conn` inside a read transaction."""
        import faiss

        upto = int(db.get_meta(conn, "seq"))
        if upto == self.seq:
            return 0
        if upto < self.seq:  # the database went back (a restore): start again from it
            self.rebuild(conn)
            return 0
        if self.seq < db.log_floor(conn):
            # The changes this index still needs were pruned (it fell behind by more than a
            # checkpoint while the writer pruned): the checkpoint on disk covers them, so load it.
            log.info("dense index at seq %d is behind the pruned change log: reloading its checkpoint", self.seq)
            self.load(conn)
            return 0
        removed, added = db.changes_since(conn, self.seq, upto)
        if removed:
            ids = np.array(removed, np.int64)
            # IVF's hash-table direct map removes exactly the ids listed, O(removed); the flat
            # index scans every row, so it gets the selector with the O(1) membership test.
            selector = (
                faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))
                if self.kind == "ivf"
                else faiss.IDSelectorBatch(ids)
            )
            self.index.remove_ids(selector)
        ids, vectors = db.vectors(conn, added, self.dim)  # those added and not removed again
        if len(ids):
            self.index.add_with_ids(vectors, ids)
        self.seq = upto
        return len(removed) + len(added)

    def stale_epoch(self) -> bool:
        """Whether another process wrote a checkpoint of another kind (a retrain) since we loaded."""
        meta = self._read_checkpoint()
        return (
            meta is not None
            and meta["file"] != self._epoch
            and (meta["kind"], meta["trained_at"]) != (self.kind, self.trained_at)
        )

    # ---- searching ----------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal) if self._index is not None else 0

    def search(
        self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None, conn: sqlite3.Connection | None = None
    ) -> list[tuple[int, float]]:
        """Top k (passage id, inner product). Call with `lock` held. With IVF-SQ8 the scores are
        those of 8-bit vectors, which reorder near ties: given `conn` (the question's snapshot),
        RERANK x k candidates are rescored with their stored float vectors (O(k) lookups)."""
        import faiss

        if self.ntotal == 0 or k <= 0:
            return []
        params: faiss.SearchParameters | None = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64))
            # faiss's Python layer takes these keywords; its stub does not list them.
            if self.kind == "ivf":
                nprobe = faiss.extract_index_ivf(self.index).nprobe
                params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)  # type: ignore[call-arg]
            else:
                params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
        rerank = self.kind == "ivf" and conn is not None
        fetch = min(RERANK * k if rerank else k, self.ntotal)
        query = np.ascontiguousarray(vector.reshape(1, -1), np.float32)
        scores, ids = self.index.search(query, fetch, params=params)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        if not rerank or conn is None or not hits:
            return hits
        found, vectors = db.vectors(conn, [i for i, _ in hits], self.dim)
        exact = vectors @ query[0]
        order = np.lexsort((found, -exact))[:k]  # score descending, then id for stable ties
        return [(int(found[j]), float(exact[j])) for j in order]

    # ---- checkpoints (writer only) ------------------------------------------------------------
    def _read_checkpoint(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.folder / CHECKPOINT).read_text())
            return meta if {"file", "sha256", "seq", "kind", "trained_at"} <= set(meta) else None
        except (OSError, ValueError):
            return None

    def checkpoint_seq(self) -> int | None:
        """The change the checkpoint on disk covers (None: no usable checkpoint)."""
        meta = self._read_checkpoint()
        return int(meta["seq"]) if meta else None

    def needs_checkpoint(self, n: int) -> bool:
        meta = self._read_checkpoint()
        covered = int(meta["seq"]) if meta else -1
        due = max(self.settings.checkpoint_every, int(self.settings.checkpoint_fraction * n))
        return meta is None or self.seq - covered >= due or self._needs_retrain(n)

    def _needs_retrain(self, n: int) -> bool:
        if self.kind == "flat":
            return n >= self.settings.ivf_threshold
        return n >= 4 * self.trained_at

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """Write the index to disk (retraining first when the archive has outgrown it). O(n);
        called by the writer, holding the index's write lock, every few percent of growth."""
        import faiss

        _, n = db.counts(conn)
        with self.lock:
            self.catch_up(conn)
            if self._needs_retrain(n):
                self.rebuild(conn)
            blob = faiss.serialize_index(self.index)  # a copy, so the lock is not held for the disk write
            meta = {"kind": self.kind, "trained_at": self.trained_at, "seq": self.seq, "ntotal": self.ntotal}
        name = f"dense-{meta['seq']:012d}-{os.getpid()}.faiss"
        path = self.folder / name
        with open(path, "wb") as fh:
            fh.write(blob.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        meta.update(file=name, sha256=_sha256(path), written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        tmp = self.folder / f".{CHECKPOINT}.{os.getpid()}"
        tmp.write_text(json.dumps(meta, indent=1))
        fsync_path(tmp)
        os.replace(tmp, self.folder / CHECKPOINT)  # the commit point
        fsync_path(self.folder)
        self._epoch = name
        for old in self.folder.glob("dense-*.faiss"):
            if old.name != name:
                old.unlink(missing_ok=True)
        log.info("dense checkpoint %s: %s, %d vectors, seq %d", name, self.kind, meta["ntotal"], meta["seq"])
