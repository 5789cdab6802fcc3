"""The on-disk index: generations, one writer at a time, and consistent reads.

Layout under index_dir:
    CURRENT       the name of the live generation (g000003), swapped atomically (os.replace)
    LOCK          flock'ed by the one process writing; holds who that is
    g000003/      store.sqlite (articles, passages, vectors, change log: db.py)
                  dense.json + dense-*.faiss (the FAISS checkpoint: dense.py)
                  lexical/ + lexical.json (the tantivy index and the change it covers: lexical_index.py)
A generation is made whole by a (re)build or a restore and then changed in place, one SQLite
transaction per write, so a write costs its own articles, not the archive. A crash mid-build
leaves CURRENT naming the previous generation; a crash mid-write leaves the SQLite state from
before or after it. The previous generation is kept after a rebuild (qa index --restore).

Every process follows the newest state: a question first checks CURRENT (a rebuild elsewhere)
and replays the change log into its FAISS index up to the snapshot it reads, so a server sees
what `qa ingest` in another process committed, without a restart. The tantivy index is written
by the writer only, right after each SQLite commit (or, after a writer crashed between the two,
by the next process that opens the generation and finds the LOCK free).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qa.errors import QAError
from qa.index import db
from qa.index.db import IndexSpec
from qa.index.dense import DenseIndex, DenseSettings, fsync_path
from qa.index.lexical_index import TextIndex
from qa.index.loading import embedder_mismatch_hint
from qa.index.tantivy_engine import LexicalIndexDamaged, LexicalIndexError
from qa.types import Article, Chunk, EmbeddedArticle

log = logging.getLogger(__name__)

__all__ = [
    "IndexSpec",
    "IndexStore",
    "Generation",
    "ReadView",
    "QAIndexError",
    "IndexNotFoundError",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexConflictError",
    "IndexReadOnlyError",
    "IndexRestoreNeededError",
]

DB_FILE = "store.sqlite"
REBUILD_HINT = "rebuild it with: qa index --rebuild (this drops articles added since the seeds)"
QUICK_CHECK_MAX_BYTES = 256 << 20  # larger databases are checked by `qa index --check`, not at every start
# How long emptying the WAL waits for readers still on an older snapshot; a checkpoint that does
# not finish in time is retried at the next one (the WAL stays valid meanwhile).
WAL_CHECKPOINT_WAIT_MS = 2_000
SQLITE_BUSY_TIMEOUT_MS = 60_000  # as db.connect sets it
READERS_KEY = "log_readers"  # meta: who replays the change log from which seq (Generation.record_reader)
REPLICA_FILE = "replica.json"  # in a generation pulled from a writer: what it copies (replication.py)


class QAIndexError(QAError, RuntimeError):
    """Base for index problems."""


class IndexNotFoundError(QAIndexError):
    pass


class IndexCorruptError(QAIndexError):
    pass


class IndexMismatchError(QAIndexError):
    """The index was built with another embedder or other chunking settings."""


class IndexConflictError(QAIndexError):
    """Another process holds the index for writing longer than we can wait."""


class IndexReadOnlyError(QAIndexError):
    """The index is a replica pulled from a writer: writes go to the writer."""


class IndexRestoreNeededError(QAIndexError):
    """The index folder holds generations but none is current: never rebuild over them."""


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


class ReadView:
    """One question's consistent view: the SQLite snapshot that its dense search was made in.
    Lexical search, passages and articles read through it all belong to that one version."""

    def __init__(
        self, conn: sqlite3.Connection, spec: IndexSpec, text: TextIndex, allowed_filter: tuple | None
    ) -> None:
        self.conn, self.spec, self.text = conn, spec, text
        # Passage ids matching the question's filters, computed once for both searches.
        self.allowed_ids = self.allowed(*allowed_filter) if allowed_filter else None

    def lexical(self, query: str, k: int) -> list[tuple[int, float]]:
        """BM25 top k (passage id, score) among the filtered passages. The tantivy index may be
        a commit ahead of this snapshot (its passages are dropped when read) or behind it."""
        allowed = None if self.allowed_ids is None else set(self.allowed_ids.tolist())
        try:
            return self.text.search(query, k, allowed)
        except LexicalIndexDamaged:
            return []  # answered from the dense index alone while the lexical one is rebuilt (logged once)
        except (LexicalIndexError, ValueError, OSError) as exc:
            raise IndexCorruptError(
                f"the lexical index {self.text.path} is unreadable ({exc}); {_restore_hint(self.text.folder)}"
            ) from exc

    def passages(self, ids: Sequence[int]) -> dict[int, Chunk]:
        try:
            return db.passages(self.conn, ids)
        except db.StoreError as exc:
            raise IndexCorruptError(f"index is inconsistent: {exc}; {REBUILD_HINT}") from exc

    def articles(self, ids: Sequence[str]) -> dict[str, Article]:
        return db.articles(self.conn, ids)

    def passage_ids_of(self, article_id: str) -> list[int]:
        return db.passage_ids_of(self.conn, article_id)

    def allowed(
        self, source: str | None, date_from: str | None, date_to: str | None, undated: bool = False
    ) -> np.ndarray:
        return db.allowed_passages(self.conn, source, date_from, date_to, undated)


class Generation:
    """One generation of the index, open in this process: SQLite plus this process's FAISS."""

    def __init__(self, folder: Path, spec: IndexSpec, dense_settings: DenseSettings) -> None:
        self.folder, self.spec = folder, spec
        self.name = folder.name
        self.path = folder / DB_FILE
        self._local = threading.local()
        self._writer_conn: sqlite3.Connection | None = None
        self.needs_upgrade = False
        self.lost_writes: list[str] = []  # found at open: derived indexes ahead of the database
        self.dense = DenseIndex(folder, spec.dim, dense_settings)
        self.text = TextIndex(folder)

    # ---- connections: one per thread for reads, one for the writer -----------------------------
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = db.connect(self.path)
        return c

    def writer_conn(self) -> sqlite3.Connection:
        if self._writer_conn is None:
            self._writer_conn = db.connect(self.path)
        return self._writer_conn

    def open(self, check: bool) -> None:
        """Check the database and load the dense index (checkpoint + replay)."""
        try:
            conn = self.conn()
            if check and self.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                result = conn.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise sqlite3.DatabaseError(result)
            fmt, spec = db.read_spec(conn)
            self.lost_writes = self._derived_ahead(conn)
            with db.transaction(conn, "DEFERRED"):  # a read snapshot
                with self.dense.lock:
                    self.dense.load(conn)
        except (sqlite3.DatabaseError, db.StoreError, OSError, KeyError, TypeError, ValueError) as exc:
            raise IndexCorruptError(
                f"index database {self.path} is unreadable or damaged ({exc}); {_restore_hint(self.folder)}"
            ) from exc
        self.needs_upgrade = fmt in db.UPGRADABLE
        if fmt != db.FORMAT_VERSION and not self.needs_upgrade:
            raise IndexMismatchError(f"index format {fmt} is not the supported {db.FORMAT_VERSION}; {REBUILD_HINT}")
        if spec != self.spec:
            diffs = ", ".join(
                f"{k}: index has {getattr(spec, k)!r}, settings ask {getattr(self.spec, k)!r}"
                for k in asdict(spec)
                if getattr(spec, k) != getattr(self.spec, k)
            )
            hint = (
                embedder_mismatch_hint(spec.embedder, self.spec.embedder) if spec.embedder != self.spec.embedder else ""
            )
            raise IndexMismatchError(
                f"index at {self.folder.parent} was built with other settings ({diffs}); {hint}{REBUILD_HINT}"
            )

    def _derived_ahead(self, conn: sqlite3.Connection) -> list[str]:
        """The derived indexes are written after the database commits, so one that covers a
        later change than the database holds means acknowledged writes were lost (the WAL
        deleted or restored from an older copy). Said, and then rebuilt from the database."""
        seq = int(db.get_meta(conn, "seq"))
        covered = (
            ("the lexical index", self.text.covered_seq()),
            ("the dense checkpoint", self.dense.checkpoint_seq()),
        )
        lost = [
            f"{what} covers change {got} but the database {self.path} ends at change {seq}: writes acknowledged "
            f"after change {seq} are lost (store.sqlite-wal deleted or from an older copy?)"
            for what, got in covered
            if got is not None and got > seq
        ]
        for problem in lost:
            log.error("%s; the derived indexes are rebuilt from the database", problem)
        return lost

    def mend_lost_writes(self) -> None:
        """Record the loss in the database (qa index --check reports it from then on) and make the
        derived indexes agree with the database again: passage ids and change numbers after the
        loss are given out again, so an index left ahead would later be read as covering them.
        The caller holds the store's LOCK."""
        conn = self.writer_conn()
        with db.transaction(conn):
            db.put_meta(conn, "lost_writes", [*db.find_meta(conn, "lost_writes", []), *self.lost_writes])
        self.checkpoint()
        self.catch_up_text()
        self.lost_writes = []

    def close(self) -> None:
        self.text.release_writer()
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None

    # ---- reads --------------------------------------------------------------------------------
    @contextmanager
    def read(
        self, vector: np.ndarray | None, k: int, allowed_filter: tuple | None = None
    ) -> Iterator[tuple[ReadView, list[tuple[int, float]]]]:
        """A consistent snapshot, and the dense top k made in it (none when vector is None).

        The snapshot is taken and the FAISS index brought up to it under the dense lock, so the
        dense results and everything read through the view describe the same version (a write
        committed meanwhile is seen by the next question)."""
        conn = self.conn()
        with db.transaction(conn, "DEFERRED"):  # a read snapshot
            with self.dense.lock:
                self.dense.catch_up(conn)  # also opens the read snapshot
                view = ReadView(conn, self.spec, self.text, allowed_filter)
                dense: list[tuple[int, float]] = []
                if vector is not None:
                    dense = self.dense.search(vector, k, view.allowed_ids, conn)
            yield view, dense

    def counts(self) -> tuple[int, int]:
        return db.counts(self.conn())

    def article(self, article_id: str) -> Article | None:
        return db.article(self.conn(), article_id)

    def passage_count_of(self, article_id: str) -> int:
        return len(db.passage_ids_of(self.conn(), article_id))

    def article_page(self, offset: int, limit: int, contains: str | None = None) -> tuple[list[Article], int]:
        conn = self.conn()
        with db.transaction(conn, "DEFERRED"):  # the page and its total from one snapshot
            return db.article_page(conn, offset, limit, contains)

    # ---- writes (the caller holds the store's LOCK) --------------------------------------------
    def apply(self, add: Sequence[EmbeddedArticle], delete: Sequence[str]) -> int:
        """One transaction: delete articles, add (or replace) others; returns articles deleted."""
        conn = self.writer_conn()
        try:
            with db.transaction(conn):
                removed = db.delete_articles(conn, delete)
                for article, chunks, vectors in add:
                    db.insert_article(conn, article, chunks, vectors)
                db.finish_write(conn)
        except db.StoreError as exc:
            raise QAIndexError(str(exc)) from exc
        self.after_write()
        return removed

    def after_write(self) -> None:
        """After a committed write: make this process's questions see it at once, index its
        texts, and checkpoint FAISS (and prune the change log) when due."""
        conn = self.writer_conn()
        with db.transaction(conn, "DEFERRED"):  # a read snapshot
            with self.dense.lock:
                self.dense.catch_up(conn)
            self.text.catch_up(conn)
            due = self.dense.needs_checkpoint(db.counts(conn)[1])
        if due:
            self.checkpoint()

    def catch_up_text(self) -> int:
        """Bring the lexical index up to the database (the caller holds the store's LOCK)."""
        conn = self.writer_conn()
        try:
            with db.transaction(conn, "DEFERRED"):  # a read snapshot
                return self.text.catch_up(conn)
        finally:
            self.text.release_writer()

    def derived_problems(self) -> list[str]:
        """How the FAISS and tantivy indexes disagree with the passages stored, and writes found
        lost (none: [])."""
        conn = self.conn()
        with db.transaction(conn, "DEFERRED"):  # a read snapshot
            lost = [*db.find_meta(conn, "lost_writes", []), *self.lost_writes]
            _, n = db.counts(conn)
            stored = conn.execute("SELECT count(*) FROM passages").fetchone()[0]
            with self.dense.lock:
                self.dense.catch_up(conn)
                dense = self.dense.ntotal
            text = self.text.count() if not self.text.needs_catch_up(conn) else None
        problems = [
            f"{what} holds {got} passages, the database {stored}"
            for what, got in (("the passage count", n), ("the dense index", dense), ("the lexical index", text))
            if got is not None and got != stored
        ]
        if text is None:
            problems.append("the lexical index is behind the database (a writer catches it up)")
        return [*lost, *problems]

    def text_needs_catch_up(self) -> bool:
        conn = self.conn()
        with db.transaction(conn, "DEFERRED"):  # a read snapshot
            return self.text.needs_catch_up(conn)

    def checkpoint(self) -> None:
        conn = self.writer_conn()
        with db.transaction(conn, "DEFERRED"):  # a read snapshot
            self.dense.checkpoint(conn)
        self.prune_log()
        self.checkpoint_wal()

    def log_needed_from(self, conn: sqlite3.Connection) -> int:
        """The lowest seq anything still replays the change log from: the FAISS checkpoint on
        disk, the lexical index, and every reader recorded (record_reader: e.g. a publish
        target, which makes its next delta from the log). Other processes' in-memory FAISS
        indexes are not counted: one left behind the pruned log reloads the checkpoint."""
        needed = [self.dense.checkpoint_seq() or 0, self.text.covered_seq() or 0]
        needed += [int(r["seq"]) for r in db.find_meta(conn, READERS_KEY, {}).values()]
        return min(needed)

    def prune_log(self) -> int:
        """Delete the change log below the lowest seq still needed (the caller holds the
        store's LOCK); one transaction, so a crash leaves the log from before or after it."""
        conn = self.writer_conn()
        with db.transaction(conn):
            floor = self.log_needed_from(conn)
            pruned = db.prune_changes(conn, floor)
        if pruned:
            log.info("change log of %s pruned up to seq %d: %d rows", self.name, floor, pruned)
        return pruned

    def record_reader(self, name: str, seq: int) -> None:
        """Say that `name` will replay the change log from `seq` (the caller holds the LOCK)."""
        conn = self.writer_conn()
        with db.transaction(conn):
            readers = db.find_meta(conn, READERS_KEY, {})
            readers[name] = {"seq": int(seq), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            db.put_meta(conn, READERS_KEY, readers)

    def forget_reader(self, name: str) -> bool:
        """Stop keeping the change log for `name` (the caller holds the LOCK)."""
        conn = self.writer_conn()
        with db.transaction(conn):
            readers = db.find_meta(conn, READERS_KEY, {})
            found = readers.pop(name, None) is not None
            db.put_meta(conn, READERS_KEY, readers)
        return found

    @property
    def is_replica(self) -> bool:
        """A read-only copy pulled from a writer (qa/index/replication.py)."""
        return (self.folder / REPLICA_FILE).is_file()

    def checkpoint_wal(self) -> bool:
        """Copy the WAL's commits into store.sqlite and empty the WAL (TRUNCATE), so that the
        acknowledged writes no longer live only in the WAL; False when readers on an older
        snapshot kept it from finishing within WAL_CHECKPOINT_WAIT_MS."""
        conn = self.writer_conn()
        conn.execute(f"PRAGMA busy_timeout = {WAL_CHECKPOINT_WAIT_MS}")
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if busy:
            log.info("WAL of %s not emptied: readers were still on an older snapshot", self.path)
        return not busy


def _restore_hint(folder: Path) -> str:
    others = sorted(
        (g.name for g in folder.parent.glob("g*") if g.is_dir() and g != folder and (g / DB_FILE).is_file()),
        reverse=True,
    )
    if others:
        return f"restore the previous generation with: qa index --restore {others[0]} (or {REBUILD_HINT})"
    return REBUILD_HINT


class IndexStore:
    """The index folder: which generation is current, who may write, and how to make a new one."""

    def __init__(
        self,
        root: str | Path,
        spec: IndexSpec,
        dense_settings: DenseSettings | None = None,
        lock_timeout_s: float = 30.0,
    ) -> None:
        self.root = Path(root)
        self.spec = spec
        self.dense_settings = dense_settings or DenseSettings()
        self.lock_timeout_s = lock_timeout_s
        self._gen: Generation | None = None
        self._gen_lock = threading.Lock()
        self._thread_lock = threading.Lock()  # one writer thread at a time inside this process
        self._holding = threading.local()  # whether this thread holds the write lock
        self._text_rebuild: threading.Thread | None = None

    @property
    def current_file(self) -> Path:
        return self.root / "CURRENT"

    def exists(self) -> bool:
        return self.current_file.is_file()

    def generations(self) -> list[str]:
        """Complete generations on disk, newest first."""
        if not self.root.is_dir():
            return []
        return sorted((g.name for g in self.root.glob("g*") if g.is_dir() and (g / DB_FILE).is_file()), reverse=True)

    def legacy_current(self) -> Path | None:
        """The current version folder when the index is still in format 1 (to be converted)."""
        if not self.exists():
            return None
        folder = self.root / self.current_file.read_text().strip()
        return folder if folder.name.startswith("v") and (folder / "manifest.json").is_file() else None

    def _current_name(self) -> str:
        if not self.exists():
            found = self.generations()
            if found:
                raise IndexRestoreNeededError(
                    f"index at {self.root} has no CURRENT pointer but holds complete generations ({', '.join(found)}); "
                    f"nothing was rebuilt over them. Restore the newest with: qa index --restore {found[0]}"
                )
            raise IndexNotFoundError(f"no index at {self.root}; build one with: qa index")
        name = self.current_file.read_text().strip()
        if not name.startswith(("g", "v")) or not (self.root / name).is_dir():
            raise IndexCorruptError(
                f"index at {self.root} points to a missing generation {name!r}; {_restore_hint(self.root / name)}"
            )
        return name

    # ---- opening and following ----------------------------------------------------------------
    def generation(self) -> Generation:
        """The current generation, opened; reopened when another process rebuilt or restored."""
        name = self._current_name()
        gen = self._gen
        if gen is not None and gen.name == name and not gen.dense.stale_epoch():
            if gen.text.damaged:
                self._rebuild_text_in_background(gen)
            return gen
        with self._gen_lock:
            gen = self._gen
            if gen is None or gen.name != name or gen.dense.stale_epoch():
                if name.startswith("v"):
                    raise IndexMismatchError(
                        f"index at {self.root} is in the old format 1 (one folder per version); "
                        "`qa ask`, `qa ingest` or `qa serve` convert it on opening, keeping every article"
                    )
                fresh = Generation(self.root / name, self.spec, self.dense_settings)
                fresh.open(check=gen is None)
                if gen is not None:
                    log.info("index generation %s (or its dense checkpoint) changed: reloaded", name)
                self._mend(fresh)
                self._follow_text(fresh)
                self._gen = gen = fresh
        return gen

    def _rebuild_text_in_background(self, gen: Generation) -> None:
        """Rebuild a damaged lexical index without holding up the question that found it."""
        if self._text_rebuild is not None and self._text_rebuild.is_alive():
            return
        self._text_rebuild = threading.Thread(
            target=self._follow_text, args=(gen,), name="qa-lexical-rebuild", daemon=True
        )
        self._text_rebuild.start()

    def _mend(self, gen: Generation) -> None:
        """Rebuild derived indexes found ahead of the database (Generation.mend_lost_writes)."""
        if not gen.lost_writes:
            return
        if getattr(self._holding, "value", False):
            gen.mend_lost_writes()
            return
        with self.write_lock("rebuilding indexes ahead of the database"):
            gen.mend_lost_writes()

    def close(self) -> None:
        """Empty the current generation's WAL into its database and close the writer (a server
        that stops leaves every acknowledged write in store.sqlite itself)."""
        gen = self._gen
        if gen is not None:
            gen.checkpoint_wal()
            gen.close()

    def _follow_text(self, gen: Generation) -> None:
        """Upgrade an older format, and bring the lexical index up to the database when a writer
        died between its SQLite and tantivy commits; only when no other process is writing (that
        writer catches up itself after its write) and not inside this thread's own write."""
        if getattr(self._holding, "value", False) or not (gen.needs_upgrade or gen.text_needs_catch_up()):
            return
        try:
            with self.write_lock(
                "upgrading the index" if gen.needs_upgrade else "indexing texts", wait=gen.needs_upgrade
            ):
                if gen.needs_upgrade:
                    db.upgrade(gen.writer_conn())
                    gen.needs_upgrade = False
                    log.info(
                        "index %s upgraded to format %d: building its lexical index", gen.folder, db.FORMAT_VERSION
                    )
                gen.catch_up_text()
        except IndexConflictError:
            if gen.needs_upgrade:
                raise
            log.info("lexical index of %s is behind; the process writing catches it up", gen.name)

    # ---- writing -------------------------------------------------------------------------------
    @contextmanager
    def write_lock(self, what: str, wait: bool = True) -> Iterator[None]:
        """This process's one writer, and across processes the LOCK file: waits up to
        lock_timeout_s (or not at all), then IndexConflictError naming who holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._thread_lock.acquire(timeout=self.lock_timeout_s if wait else 0):
            raise IndexConflictError(f"the index at {self.root} is being written by another thread of this process")
        try:
            self._holding.value = True
            with open(self.root / "LOCK", "a+") as fh:
                deadline = time.monotonic() + (self.lock_timeout_s if wait else 0)
                while True:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                            fh.seek(0)
                            holder = fh.read().strip() or "another process"
                            raise IndexConflictError(
                                f"the index at {self.root} is being written by {holder}; try again when it finishes"
                            ) from exc
                        time.sleep(0.05)
                try:
                    fh.seek(0)
                    fh.truncate()
                    fh.write(f"pid {os.getpid()} ({what}, since {time.strftime('%H:%M:%S')})")
                    fh.flush()
                    yield
                finally:
                    fh.seek(0)
                    fh.truncate()
                    fcntl.flock(fh, fcntl.LOCK_UN)
        finally:
            self._holding.value = False
            self._thread_lock.release()

    def apply(
        self,
        add: Sequence[EmbeddedArticle],
        delete: Sequence[str] = (),
        what: str = "a write",
    ) -> int:
        with self.write_lock(what):
            gen = self.generation()
            if gen.is_replica:
                raise IndexReadOnlyError(
                    f"the index at {self.root} is a read-only replica (qa replica pull); "
                    "add and delete articles on the writer's index, which publishes to it"
                )
            return gen.apply(add, delete)

    def build(self, batches: Iterator[Sequence[EmbeddedArticle]]) -> str:
        """A new generation from scratch, made current only once complete; returns its name."""
        with self.write_lock("a rebuild"):
            for stale in self.root.glob(".tmp-*"):  # left by a crash mid-build
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
            found = self.generations()
            number = max((int(g[1:]) for g in found if g[1:].isdigit()), default=0) + 1
            name = f"g{number:06d}"
            tmp = self.root / f".tmp-{name}-{os.getpid()}"
            tmp.mkdir()
            conn = db.connect(tmp / DB_FILE)
            try:
                db.create(conn, self.spec)
                for batch in batches:
                    with db.transaction(conn):
                        for article, chunks, vectors in batch:
                            db.insert_article(conn, article, chunks, vectors)
                        db.finish_write(conn)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except db.StoreError as exc:
                raise QAIndexError(str(exc)) from exc
            finally:
                conn.close()
            gen = Generation(tmp, self.spec, self.dense_settings)
            gen.open(check=False)
            gen.checkpoint()
            gen.catch_up_text()
            gen.prune_log()  # both derived indexes cover the build now: its change log is not needed
            gen.close()
            fsync_path(tmp)
            tmp.rename(self.root / name)
            fsync_path(self.root)
            self._make_current(name)
            return name

    def install(self, folder: Path) -> str:
        """Make a complete generation folder made elsewhere (a pulled copy, already inside root)
        the current one, under the next generation number; the caller holds the LOCK."""
        found = self.generations()
        number = max((int(g[1:]) for g in found if g[1:].isdigit()), default=0) + 1
        name = f"g{number:06d}"
        fsync_path(folder)
        folder.rename(self.root / name)
        fsync_path(self.root)
        self._make_current(name)
        return name

    def _make_current(self, name: str) -> None:
        previous = self.current_file.read_text().strip() if self.exists() else None
        _write_atomically(self.current_file, name + "\n")  # the commit point
        # Keep the previous generation (qa index --restore); anything older goes.
        for old in [*self.root.glob("g*"), *self.root.glob("v*")]:
            if old.is_dir() and old.name not in (name, previous):
                shutil.rmtree(old, ignore_errors=True)
        log.info("index generation %s is current (previous: %s)", name, previous)

    def restore(self, name: str) -> None:
        """Make a complete generation current again (after CURRENT was lost, or to go back)."""
        if name not in self.generations():
            raise IndexNotFoundError(
                f"no complete generation {name!r} in {self.root}; found: {', '.join(self.generations()) or 'none'}"
            )
        with self.write_lock("a restore"):
            Generation(self.root / name, self.spec, self.dense_settings).open(check=True)
            self._make_current(name)

    def check(self) -> str:
        """Full check of the current generation (O(archive)): SQLite's integrity check, then
        whether FAISS and tantivy hold one entry per stored passage. Returns "ok" or the problems."""
        gen = self.generation()
        verdict = str(gen.conn().execute("PRAGMA integrity_check").fetchone()[0])
        return verdict if verdict != "ok" else "; ".join(gen.derived_problems()) or "ok"
