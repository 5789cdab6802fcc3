"""Read-only replicas on other hosts: the writer publishes its index into a folder, each replica
host pulls from it, verifies every digest, and only then makes the copy current.

SQLite's WAL cannot be shared across hosts (docs/scale-out.md), so every host that answers needs
its own copy. The transport is a folder path and plain files, nothing else: a shared or synced
directory (NFS, rsync, a Ray task copying it, object storage mounted as files). Every file is
written under a temporary name and renamed into place, and LATEST.json is replaced last, so a
publisher killed midway leaves the previous publication whole; every file a replica takes is
checked against its sha256 first, so a copy cut short or damaged in transit is refused
(SnapshotCorruptError) and the replica keeps serving the generation it had.

The published folder:
    LATEST.json               what is published now: the writer's source id and generation, the
                              seq and time of its newest state, the whole copy and the deltas
                              after it, each with its sha256
    full-<seq>/               a whole copy of one consistent state: manifest.json (every file with
                              size and sha256) + store.sqlite (SQLite's online backup API: writers
                              go on meanwhile) + the FAISS checkpoint and the lexical index, each
                              at or behind that seq (hard links taken under the writer's LOCK)
    delta-<from>-<to>.sqlite  what changed from one published seq to the next: the change-log
                              rows, and the articles, passages and vectors they add
    readers/<name>.json       each replica's seq and when it pulled (written by the replica)

A whole copy is a new generation folder on the replica, swapped in by replacing CURRENT (running
servers reopen it); a delta is applied in place as one SQLite transaction, exactly as a write on
the writer is (running servers replay it before their next question). The derived indexes of a
copy follow the change log it carries, as every process's do. The writer keeps its change log
from the seq it last published (Generation.record_reader), so it can always make the next delta.

Costs (n passages in the archive, m changed since the last publication): publish a whole copy
O(n) bytes (database + FAISS + lexical), a delta O(m); pull the same, plus sha256 of what is
pulled and, for a delta, one transaction and the replica's own FAISS/tantivy catch-up of m.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.index import db
from qa.index.db import IndexSpec
from qa.index.dense import CHECKPOINT, DenseSettings, fsync_path
from qa.index.lexical_index import FOLDER as LEXICAL_FOLDER
from qa.index.lexical_index import STATE as LEXICAL_STATE
from qa.index.store import (
    DB_FILE,
    REPLICA_FILE,
    Generation,
    IndexStore,
    QAIndexError,
)

log = logging.getLogger(__name__)

FORMAT = 1
LATEST = "LATEST.json"
MANIFEST = "manifest.json"
READERS = "readers"
SOURCE_KEY = "source_id"  # meta: a random id of the writer's generation, so a copy never mixes two writers
# A new whole copy instead of another delta once the deltas since the last whole copy weigh
# this share of it: past that a new replica pulls less as one whole copy.
DELTA_SHARE = 0.25
DELTA_ALWAYS_BELOW = 64 << 20  # bytes of a whole copy under which deltas are always cheap enough
BLOCK = 1 << 22


class ReplicationError(QAIndexError):
    """Publishing or pulling a replica failed; the message says why and what to do."""


class SnapshotNotFoundError(ReplicationError):
    """Nothing (readable) is published in the folder."""


class SnapshotCorruptError(ReplicationError):
    """A published file is missing, cut short or altered (its digest differs): not taken."""


@dataclass(frozen=True)
class TransferResult:
    """What one publish or pull did."""

    kind: str  # "full", "delta", "unchanged"
    seq: int
    bytes: int
    seconds: float
    generation: str  # the writer's generation (publish) or the replica's current one (pull)


@dataclass(frozen=True)
class ReplicaState:
    """What a replica serves: the writer's seq, and the time the writer was last known to be at it."""

    source: str
    generation: str
    seq: int
    as_of: float  # the publisher's clock (hosts keep time with NTP)
    pulled_at: float

    def lag_s(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.as_of)


# ---- small file helpers ------------------------------------------------------------------------
def _now() -> float:
    return time.time()


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(value, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _copy_hashed(src: Path, dst: Path, bar: Any = None) -> tuple[int, str]:
    """Copy a file, fsync it, and return (size, sha256) of what was read: one pass."""
    h = hashlib.sha256()
    size = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for block in iter(lambda: fin.read(BLOCK), b""):
            h.update(block)
            fout.write(block)
            size += len(block)
            if bar is not None:
                bar.update(len(block))
        fout.flush()
        os.fsync(fout.fileno())
    return size, h.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path


def _bar(total: int, progress: bool, what: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=what, disable=not progress)


def read_latest(folder: Path) -> dict[str, Any]:
    """The publication in `folder` (SnapshotNotFoundError when there is none)."""
    try:
        latest = json.loads((folder / LATEST).read_text())
    except FileNotFoundError as exc:
        raise SnapshotNotFoundError(
            f"nothing is published in {folder} (no {LATEST}); on the writer run: qa replica publish {folder}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise SnapshotCorruptError(f"{folder / LATEST} is unreadable ({exc}); publish again on the writer") from exc
    if not isinstance(latest, dict) or latest.get("format") != FORMAT:
        raise SnapshotCorruptError(f"{folder / LATEST} is not a publication of format {FORMAT}; publish again")
    return latest


# ---- publishing (on the writer) ----------------------------------------------------------------
def _source_id(gen: Generation) -> str:
    """The writer generation's random id, made at its first publication (the caller holds LOCK)."""
    conn = gen.writer_conn()
    with db.transaction(conn):
        found = db.find_meta(conn, SOURCE_KEY)
        if found is None:
            found = uuid.uuid4().hex
            db.put_meta(conn, SOURCE_KEY, found)
    return str(found)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # the writer replaces these files by new names: a link keeps this version
    except OSError:
        shutil.copy2(src, dst)


def _stage_derived(gen: Generation, staging: Path) -> int:
    """Hard-link the FAISS checkpoint and the lexical index into `staging` (milliseconds; the
    caller holds the LOCK, so neither changes meanwhile) and return the lowest seq they cover:
    the copy's change log must hold every change after it."""
    try:
        dense_meta = json.loads((gen.folder / CHECKPOINT).read_text())
        _link_or_copy(gen.folder / dense_meta["file"], staging / dense_meta["file"])
        shutil.copy2(gen.folder / CHECKPOINT, staging / CHECKPOINT)
        shutil.copy2(gen.folder / LEXICAL_STATE, staging / LEXICAL_STATE)
        lexical = gen.folder / LEXICAL_FOLDER
        for path in _files(lexical):
            if path.name.startswith(".tantivy-"):  # tantivy's lock files: not index data
                continue
            _link_or_copy(path, staging / LEXICAL_FOLDER / path.relative_to(lexical))
        lexical_seq = json.loads((staging / LEXICAL_STATE).read_text())["seq"]
        return min(int(dense_meta["seq"]), int(lexical_seq))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReplicationError(
            f"the FAISS checkpoint or the lexical index of {gen.folder} is missing or unreadable ({exc}); "
            "`qa index --check` says which, and opening the index as the writer (qa index) rebuilds it"
        ) from exc


def _backup(src: Path, dst: Path) -> int:
    """A consistent copy of the database by SQLite's online backup API, in one step (one read
    snapshot; writers in WAL mode go on meanwhile). Returns the copy's seq."""
    source = sqlite3.connect(str(src), timeout=60)
    target = sqlite3.connect(str(dst))
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
        return int(db.get_meta(target, "seq"))
    finally:
        target.close()
        source.close()


_DELTA_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE articles (id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, date TEXT, source TEXT, url TEXT);
CREATE TABLE passages (id INTEGER PRIMARY KEY, article_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER);
CREATE TABLE vectors (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE changes (seq INTEGER PRIMARY KEY, passage_id INTEGER NOT NULL, op INTEGER NOT NULL);
"""


def _write_delta(gen: Generation, path: Path, after: int, meta: dict[str, Any]) -> int:
    """Write what changed after seq `after` up to the database's seq, read in one snapshot (the
    caller holds the LOCK): the change-log rows, and every article touched by an addition with all
    its passages and vectors. Returns the seq it reaches."""
    conn = gen.writer_conn()
    out = sqlite3.connect(str(path))
    try:
        out.execute("PRAGMA page_size = 1024")  # small deltas stay small (the file is read once)
        out.executescript(_DELTA_SCHEMA)
        with db.transaction(conn, "DEFERRED"):  # one snapshot of the writer's database
            upto = int(db.get_meta(conn, "seq"))
            rows = db.change_rows(conn, after, upto)
            added = [pid for _, pid, op in rows if op > 0]
            touched = sorted(
                {r[0] for pid in added for r in conn.execute("SELECT article_id FROM passages WHERE id = ?", (pid,))}
            )
            counts = db.counts(conn)
            with db.transaction(out):
                out.executemany("INSERT INTO changes (seq, passage_id, op) VALUES (?, ?, ?)", rows)
                for aid in touched:
                    art = conn.execute(
                        "SELECT id, title, text, date, source, url FROM articles WHERE id = ?", (aid,)
                    ).fetchone()
                    out.execute("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?)", art)
                    for pid, start, end in conn.execute(
                        'SELECT id, start, "end" FROM passages WHERE article_id = ?', (aid,)
                    ).fetchall():
                        out.execute(
                            'INSERT INTO passages (id, article_id, start, "end") VALUES (?, ?, ?, ?)',
                            (pid, aid, start, end),
                        )
                        v = conn.execute("SELECT v FROM vectors WHERE id = ?", (pid,)).fetchone()
                        out.execute("INSERT INTO vectors (id, v) VALUES (?, ?)", (pid, v[0]))
                delta_meta = {**meta, "from": after, "to": upto, "articles": counts[0], "passages": counts[1]}
                db.put_meta(out, "delta", delta_meta)
    finally:
        out.close()
    return upto


def open_store(root: str | Path, dense_settings: DenseSettings | None = None) -> IndexStore:
    """The index at `root` with the spec its current generation was built with (read from its
    database: publishing needs no embedder loaded)."""
    root = Path(root)
    probe = IndexStore(root, IndexSpec("", 0, 0, 0))
    path = root / probe._current_name() / DB_FILE
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        _, spec = db.read_spec(conn)
    except (sqlite3.DatabaseError, db.StoreError) as exc:
        raise ReplicationError(f"cannot read the index database {path} ({exc})") from exc
    finally:
        conn.close()
    return IndexStore(root, spec, dense_settings)


def forget(store: IndexStore, target: str | Path) -> bool:
    """Stop keeping the writer's change log for a publish folder given up (its next publication
    is then a whole copy). Returns whether the folder was recorded."""
    with store.write_lock("forgetting a publish folder"):
        return store.generation().forget_reader(f"publish:{Path(target).resolve()}")


def _delta_bytes(latest: dict[str, Any]) -> int:
    return sum(int(d["bytes"]) for d in latest.get("deltas", []))


def _next_delta(latest: dict[str, Any], source: str, generation: str, seq: int, floor: int) -> bool:
    """Whether the next publication can be a delta after the one in LATEST.json."""
    return (
        latest.get("source") == source
        and latest.get("generation") == generation
        and floor <= int(latest["seq"]) <= seq
        and (
            _delta_bytes(latest) < DELTA_SHARE * int(latest["full"]["bytes"])
            or int(latest["full"]["bytes"]) < DELTA_ALWAYS_BELOW
        )
    )


def publish(store: IndexStore, target: str | Path, full: bool = False, progress: bool = False) -> TransferResult:
    """Publish the writer's current state into `target`: a delta since the last publication
    when there is one of this generation and the deltas since its whole copy stay small, else
    (or with full=True) a whole copy. Holds the writer's LOCK only for milliseconds, except
    while a delta is read (O(changes))."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        latest: dict[str, Any] | None = read_latest(target)
    except SnapshotNotFoundError:
        latest = None
    except SnapshotCorruptError as exc:
        log.warning("%s: publishing a whole copy", exc)
        latest = None
    reader = f"publish:{target.resolve()}"
    staging = store.root / f".publish-{os.getpid()}"
    with store.write_lock("publishing for replicas"):
        gen = store.generation()
        if gen.is_replica:
            raise ReplicationError(f"the index at {store.root} is itself a replica: publish from the writer's index")
        source = _source_id(gen)
        conn = gen.writer_conn()
        seq, floor = int(db.get_meta(conn, "seq")), db.log_floor(conn)
        if latest is not None and not full and _next_delta(latest, source, gen.name, seq, floor):
            if int(latest["seq"]) == seq:  # nothing new: only say that the writer is still at seq
                latest["at"] = _now()
                _write_json(target / LATEST, latest)
                return TransferResult("unchanged", seq, 0, time.perf_counter() - started, gen.name)
            name = f"delta-{int(latest['seq']):012d}-{seq:012d}.sqlite"
            tmp = target / f".tmp-{name}-{os.getpid()}"
            tmp.unlink(missing_ok=True)
            upto = _write_delta(gen, tmp, int(latest["seq"]), {"source": source, "generation": gen.name})
            fsync_path(tmp)
            size = tmp.stat().st_size
            delta = {"file": name, "from": int(latest["seq"]), "to": upto, "bytes": size, "sha256": _sha256(tmp)}
            os.replace(tmp, target / name)
            latest["deltas"] = [*latest["deltas"], delta]
            latest["seq"], latest["at"] = upto, _now()
            _write_json(target / LATEST, latest)  # the commit point
            gen.record_reader(reader, upto)  # the next delta starts here
            return TransferResult("delta", upto, size, time.perf_counter() - started, gen.name)
        # A whole copy: the derived indexes linked now, the database copied after the LOCK is let go.
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        derived_seq = _stage_derived(gen, staging)
        gen.record_reader(reader, derived_seq)  # the writer keeps the log the copy replays from
        spec, gen_name, db_path = gen.spec, gen.name, gen.path
    try:
        return _publish_full(target, staging, db_path, derived_seq, source, gen_name, spec, latest, started, progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_staged(staging: Path, out: Path, progress: bool) -> dict[str, dict[str, Any]]:
    """Copy the staged derived indexes into `out` beside its database backup, each file hashed
    as it is copied; the manifest's `files` (bytes and sha256 by relative path)."""
    files: dict[str, dict[str, Any]] = {}
    staged = list(_files(staging))
    bar = _bar(sum(p.stat().st_size for p in staged) + (out / DB_FILE).stat().st_size, progress, "publishing")
    with bar:
        for path in staged:
            rel = path.relative_to(staging).as_posix()
            size, digest = _copy_hashed(path, out / rel, bar)
            files[rel] = {"bytes": size, "sha256": digest}
        fsync_path(out / DB_FILE)
        files[DB_FILE] = {"bytes": (out / DB_FILE).stat().st_size, "sha256": _sha256(out / DB_FILE)}
        bar.update(files[DB_FILE]["bytes"])
    return files


def _publish_full(
    target: Path,
    staging: Path,
    db_path: Path,
    derived_seq: int,
    source: str,
    gen_name: str,
    spec: IndexSpec,
    previous: dict[str, Any] | None,
    started: float,
    progress: bool,
) -> TransferResult:
    out = target / f".tmp-full-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        taken = _now()  # the writer was at the copy's seq at least until now
        seq = _backup(db_path, out / DB_FILE)
        check = sqlite3.connect(str(out / DB_FILE))
        try:
            floor = db.log_floor(check)
        finally:
            check.close()
        if floor > derived_seq:  # cannot happen while record_reader holds the log; never publish a hole
            raise ReplicationError(f"the change log was pruned past seq {derived_seq} during the copy; publish again")
        files = _copy_staged(staging, out, progress)
        created = taken
        manifest = {
            "format": FORMAT,
            "source": source,
            "generation": gen_name,
            "seq": seq,
            "spec": spec.__dict__,
            "created": created,
            "files": files,
        }
        _write_json(out / MANIFEST, manifest)
        for sub in sorted({p.parent for p in _files(out)}, key=lambda p: -len(p.parts)):
            fsync_path(sub)
        folder = f"full-{seq:012d}-{uuid.uuid4().hex[:8]}"
        out.rename(target / folder)
        fsync_path(target)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    total = sum(int(f["bytes"]) for f in files.values())
    latest = {
        "format": FORMAT,
        "source": source,
        "generation": gen_name,
        "spec": spec.__dict__,
        "seq": seq,
        "at": created,
        "full": {"folder": folder, "seq": seq, "bytes": total, "manifest_sha256": _sha256(target / folder / MANIFEST)},
        "deltas": [],
    }
    _write_json(target / LATEST, latest)  # the commit point: replicas see the new copy from here
    _drop_old(target, keep={folder, previous["full"]["folder"] if previous and "full" in previous else ""})
    return TransferResult("full", seq, total, time.perf_counter() - started, gen_name)


def _drop_old(target: Path, keep: set[str]) -> None:
    """Remove whole copies but the new one and the one before (a replica may be pulling it),
    and the deltas of older chains (a replica that needed them pulls the whole copy)."""
    for path in target.glob("full-*"):
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
    for path in target.glob("delta-*.sqlite"):
        path.unlink(missing_ok=True)


# ---- pulling (on a replica host) ---------------------------------------------------------------
class ReplicaDivergedError(ReplicationError):
    """A delta did not land on the copy as the writer describes it: a whole copy is pulled."""


def replica_state(root: str | Path) -> ReplicaState | None:
    """What the replica at `root` serves (None when its current generation is not a pulled copy)."""
    root = Path(root)
    try:
        name = (root / "CURRENT").read_text().strip()
        raw = json.loads((root / name / REPLICA_FILE).read_text())
        return ReplicaState(
            str(raw["source"]), str(raw["generation"]), int(raw["seq"]), float(raw["as_of"]), float(raw["pulled_at"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_state(folder: Path, latest: dict[str, Any], seq: int, as_of: float) -> None:
    _write_json(
        folder / REPLICA_FILE,
        {
            "source": latest["source"],
            "generation": latest["generation"],
            "seq": seq,
            "as_of": as_of,
            "pulled_at": _now(),
        },
    )


def _chain(latest: dict[str, Any], seq: int) -> list[dict[str, Any]] | None:
    """The deltas that lead from `seq` to the published seq ([] when there; None: no such path)."""
    chain, at = [], seq
    by_start = {int(d["from"]): d for d in latest.get("deltas", [])}
    while at != int(latest["seq"]):
        step = by_start.get(at)
        if step is None:
            return None
        chain.append(step)
        at = int(step["to"])
    return chain


def pull(
    source: str | Path,
    root: str | Path,
    name: str | None = None,
    dense_settings: DenseSettings | None = None,
    progress: bool = False,
    store: IndexStore | None = None,
) -> TransferResult:
    """Bring the replica at `root` up to what is published in `source`: the deltas since its
    seq when they are all there, else a whole copy (then the deltas after it). Every file is
    verified before it is used; on any error the replica keeps serving what it had. `store`:
    the replica's store from the previous pull of this process (`qa replica pull --every`), so
    that its FAISS index stays loaded between pulls."""
    source, root = Path(source), Path(root)
    started = time.perf_counter()
    latest = read_latest(source)
    spec = IndexSpec(**latest["spec"])
    if store is None or store.root != root or store.spec != spec:
        store = IndexStore(root, spec, dense_settings or (store.dense_settings if store else None))
    moved, kind = 0, "unchanged"
    with store.write_lock("pulling from the writer"):
        for stale in root.glob(".tmp-*"):  # left by a pull that was killed
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        latest = _latest_under_lock(source, store)
        state = replica_state(root)
        chain = None
        if state is not None and (state.source, state.generation) == (latest["source"], latest["generation"]):
            if state.seq > int(latest["seq"]):  # a synced folder behind the copy: nothing to take from it
                return TransferResult(kind, state.seq, 0, time.perf_counter() - started, store.generation().name)
            chain = _chain(latest, state.seq)
        if chain == []:  # up to date: only the time the writer was last known at this seq moves
            current = root / (root / "CURRENT").read_text().strip()
            _write_state(current, latest, int(latest["seq"]), float(latest["at"]))
            _record_pull(source, root, name, int(latest["seq"]))
            return TransferResult(kind, int(latest["seq"]), 0, time.perf_counter() - started, current.name)
        if chain:
            try:
                for delta in chain:
                    moved += _apply_delta(source, delta, store)
                kind = "delta"
            except ReplicaDivergedError as exc:
                log.warning("%s: pulling a whole copy", exc)
                chain = None
        if chain is None:
            moved += _pull_full(source, latest, store, progress)
            kind = "full"
            state = replica_state(root)
            assert state is not None  # _pull_full made it
            for delta in _chain(latest, state.seq) or []:
                moved += _apply_delta(source, delta, store)
        gen = store.generation()
        _write_state(gen.folder, latest, int(latest["seq"]), float(latest["at"]))
        gen_name = gen.name
        store.close()
    _record_pull(source, root, name, int(latest["seq"]))
    return TransferResult(kind, int(latest["seq"]), moved, time.perf_counter() - started, gen_name)


def _latest_under_lock(source: Path, store: IndexStore) -> dict[str, Any]:
    """The publication read again once the replica's LOCK is held: another pull of the same folder
    (two replicas on one node) may have taken a newer one while this one waited, and acting on the
    one read before would pull a whole copy of an older state over the newer one."""
    latest = read_latest(source)
    if IndexSpec(**latest["spec"]) != store.spec:
        raise ReplicationError(f"the publication in {source} changed while this pull waited; pull again")
    return latest


def replica_store(source: str | Path, root: str | Path, dense_settings: DenseSettings | None = None) -> IndexStore:
    """The replica's store at `root`, for the spec published in `source` (to pass to pull())."""
    return IndexStore(Path(root), IndexSpec(**read_latest(Path(source))["spec"]), dense_settings)


def _pull_full(source: Path, latest: dict[str, Any], store: IndexStore, progress: bool) -> int:
    """Copy the whole published copy into a new generation folder, verify it, open it, and make it
    current (the caller holds the replica's LOCK). Returns the bytes copied."""
    full = latest["full"]
    folder = source / full["folder"]
    try:
        if _sha256(folder / MANIFEST) != full["manifest_sha256"]:
            raise SnapshotCorruptError(f"{folder / MANIFEST} differs from its digest in {LATEST}")
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise SnapshotCorruptError(
            f"{folder} is missing (replaced by a newer publication meanwhile?); pull again"
        ) from exc
    tmp = store.root / f".tmp-pull-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    current = replica_state(store.root)
    keeps = f"the replica keeps serving seq {current.seq}" if current else "the replica's index was left as it was"
    try:
        total = sum(int(f["bytes"]) for f in manifest["files"].values())
        with _bar(total, progress, "pulling") as bar:
            for rel, info in manifest["files"].items():
                src = folder / rel
                if not src.is_file():
                    raise SnapshotCorruptError(f"{src} is missing from the published copy; {keeps}")
                size, digest = _copy_hashed(src, tmp / rel, bar)
                if size != info["bytes"] or digest != info["sha256"]:
                    raise SnapshotCorruptError(
                        f"{src} differs from its manifest ({size} bytes, expected {info['bytes']}; sha256 "
                        f"{'same' if digest == info['sha256'] else 'differs'}): cut short or damaged; {keeps}"
                    )
        gen = Generation(tmp, store.spec, store.dense_settings)
        try:
            gen.open(check=True)  # SQLite checked, FAISS loaded and replayed up to the copy's seq
            gen.catch_up_text()  # the lexical index replays the log up to it too
        finally:
            gen.close()
        _write_state(tmp, latest, int(manifest["seq"]), float(manifest["created"]))
        for sub in sorted({p.parent for p in _files(tmp)}, key=lambda p: -len(p.parts)):
            fsync_path(sub)
        name = store.install(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("replica %s: generation %s is a whole copy of seq %d", store.root, name, manifest["seq"])
    return total


def _apply_delta(source: Path, delta: dict[str, Any], store: IndexStore) -> int:
    """Verify one delta and apply it to the current generation in one transaction (the caller
    holds the replica's LOCK); FAISS and tantivy then follow it as after any write."""
    local = store.root / f".tmp-delta-{os.getpid()}.sqlite"
    try:
        size, digest = _copy_hashed(source / delta["file"], local)
    except FileNotFoundError as exc:
        raise ReplicaDivergedError(f"{source / delta['file']} is gone (a newer whole copy replaced it)") from exc
    try:
        if size != delta["bytes"] or digest != delta["sha256"]:
            raise SnapshotCorruptError(
                f"{source / delta['file']} differs from its digest ({size} bytes, expected {delta['bytes']}): "
                "cut short or damaged; the replica keeps serving what it had"
            )
        gen = store.generation()
        _apply_rows(gen, local, delta)
        gen.after_write()
    finally:
        local.unlink(missing_ok=True)
    return size


def _apply_rows(gen: Generation, path: Path, delta: dict[str, Any]) -> None:
    src = sqlite3.connect(str(path))
    conn = gen.writer_conn()
    try:
        meta = db.get_meta(src, "delta")
        rows = src.execute("SELECT seq, passage_id, op FROM changes ORDER BY seq").fetchall()
        with db.transaction(conn):
            here = int(db.get_meta(conn, "seq"))
            if here != int(delta["from"]):
                raise ReplicaDivergedError(f"the copy is at seq {here}, the delta starts at {delta['from']}")
            removed = [pid for _, pid, op in rows if op < 0]
            where = "SELECT article_id FROM passages WHERE id = ?"
            touched = {r[0] for pid in removed for r in conn.execute(where, (pid,))}
            touched.update(r[0] for r in src.execute("SELECT id FROM articles"))
            for aid in touched:  # an article touched is replaced whole by the writer's version (or removed)
                pids = [(pid,) for pid in db.passage_ids_of(conn, aid)]
                conn.executemany("DELETE FROM vectors WHERE id = ?", pids)
                conn.execute("DELETE FROM passages WHERE article_id = ?", (aid,))
                conn.execute("DELETE FROM articles WHERE id = ?", (aid,))
            conn.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?)", src.execute("SELECT * FROM articles"))
            conn.executemany(
                'INSERT INTO passages (id, article_id, start, "end") VALUES (?, ?, ?, ?)',
                src.execute('SELECT id, article_id, start, "end" FROM passages'),
            )
            conn.executemany("INSERT INTO vectors (id, v) VALUES (?, ?)", src.execute("SELECT id, v FROM vectors"))
            conn.executemany("INSERT INTO changes (seq, passage_id, op) VALUES (?, ?, ?)", rows)
            db.put_meta(conn, "seq", int(meta["to"]))
            db.put_meta(conn, "counts", {"articles": int(meta["articles"]), "passages": int(meta["passages"])})
            # O(n) counts, milliseconds even at 1M passages: a copy that drifted is never served as current.
            found = tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("articles", "passages"))
            if found != (int(meta["articles"]), int(meta["passages"])):
                raise ReplicaDivergedError(
                    f"after the delta to seq {meta['to']} the copy holds {found[0]} articles and {found[1]} passages, "
                    f"the writer {meta['articles']} and {meta['passages']}"
                )
    except (sqlite3.DatabaseError, db.StoreError, KeyError) as exc:
        raise SnapshotCorruptError(f"the delta {delta['file']} is unreadable ({exc})") from exc
    finally:
        src.close()


def _record_pull(source: Path, root: Path, name: str | None, seq: int) -> None:
    """Tell the publisher's folder where this replica is (for `qa replica status`); a folder this
    host may not write to is fine."""
    name = name or f"{socket.gethostname()}-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]}"
    try:
        (source / READERS).mkdir(exist_ok=True)
        _write_json(source / READERS / f"{name}.json", {"seq": seq, "at": _now(), "root": str(root.resolve())})
    except OSError as exc:
        log.warning("could not record this replica's seq in %s (%s)", source / READERS, exc)


def replicas(source: str | Path) -> dict[str, dict[str, Any]]:
    """What each replica recorded in the published folder: {name: {seq, at, root}}."""
    out = {}
    for path in sorted((Path(source) / READERS).glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out


__all__ = [
    "forget",
    "open_store",
    "ReplicaDivergedError",
    "ReplicaState",
    "ReplicationError",
    "SnapshotCorruptError",
    "SnapshotNotFoundError",
    "TransferResult",
    "publish",
    "pull",
    "read_latest",
    "replica_state",
    "replica_store",
    "replicas",
]
