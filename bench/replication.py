"""Replicas: what publishing and pulling cost, whole copy against delta, and the lag from a
commit on the writer to an answer from a replica's copy.

    python -m bench.replication --squad-train ../shared/data/squad/train-v1.1.json --articles 20000

Builds a writer index of N articles (bench.scale's articles: four SQuAD-train paragraphs each)
with a stand-in embedder (random vectors around 256 centres, made in microseconds: replication
moves bytes, it does not embed), then on this one machine, the published folder on the same disk:
- a whole copy: publish (SQLite backup + FAISS checkpoint + tantivy, sha256 of each) and pull
  (copy + sha256 + open + swap);
- deltas after it: one article, and a bulk group of 256 articles: publish, pull;
- the lag: commit one article, publish, pull, until a search on a replica opened beforehand (as
  a running server is) finds it; five times, median.
Prints a table and writes --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from bench.scale import make_articles

DIM = 384


class RandomEmbedder:
    """Unit vectors around 256 fixed centres, seeded by the text (the bytes are what count here)."""

    name = "stand-in-random"
    dim = DIM

    def __init__(self) -> None:
        self.centres = np.random.default_rng(0).standard_normal((256, DIM)).astype(np.float32)

    def encode(self, texts, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            rng = np.random.default_rng(abs(hash(text)) % (2**32))
            out[i] = self.centres[rng.integers(256)] + 0.5 * rng.standard_normal(DIM)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad-train", required=True)
    ap.add_argument("--articles", type=int, default=20_000)
    ap.add_argument("--work", default="/tmp/qa-bench-replication")
    ap.add_argument("--out", default="bench/results/replication.json")
    ap.add_argument("--reuse", action="store_true", help="keep --work's indexes and whole copy: deltas and lag only")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")

    from qa.config import Settings
    from qa.pipeline import QAPipeline

    work = Path(args.work)
    writer_dir, shipped, replica_dir = work / "writer", work / "shipped", work / "replica"

    def pipeline(path: Path) -> QAPipeline:
        return QAPipeline(Settings(index_dir=path), embedder=RandomEmbedder())  # searched only: no reader loaded

    if args.reuse:  # the indexes and the whole copy of an earlier run: only the deltas and the lag again
        writer, server = pipeline(writer_dir), pipeline(replica_dir)
        writer.load()
        server.load()
        results: dict = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        writer, server, results = whole_copy(args, pipeline, writer_dir, shipped, replica_dir)
    deltas(args, writer, server, shipped, replica_dir, results)


def whole_copy(args, pipeline, writer_dir: Path, shipped: Path, replica_dir: Path):
    from qa.index import replication

    articles = make_articles(args.squad_train, args.articles)
    t = time.perf_counter()
    writer = pipeline(writer_dir)
    writer.build_from_articles(articles, progress=True)
    build_s = time.perf_counter() - t
    counts = writer.counts()
    print(f"built {counts.articles} articles, {counts.passages} passages in {build_s:.0f} s", flush=True)

    results: dict = {"articles": counts.articles, "passages": counts.passages, "build_s": round(build_s, 1)}
    full = replication.publish(writer.store, shipped)
    results["publish_full"] = {"s": round(full.seconds, 2), "mb": round(full.bytes / 1e6, 1)}
    files = replication.read_latest(shipped)
    manifest = json.loads((shipped / files["full"]["folder"] / "manifest.json").read_text())
    by_kind: dict[str, int] = {}
    for rel, info in manifest["files"].items():
        kind = "database" if rel == "store.sqlite" else "faiss" if rel.endswith(".faiss") else "lexical"
        by_kind[kind] = by_kind.get(kind, 0) + int(info["bytes"])
    results["full_mb_by_part"] = {k: round(v / 1e6, 1) for k, v in by_kind.items()}
    pulled = replication.pull(shipped, replica_dir)
    results["pull_full"] = {"s": round(pulled.seconds, 2), "mb": round(pulled.bytes / 1e6, 1)}
    t = time.perf_counter()
    server = pipeline(replica_dir)
    server.load()
    results["replica_open_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps(results), flush=True)
    return writer, server, results


def deltas(args, writer, server, shipped: Path, replica_dir: Path, results: dict) -> None:
    from qa.index import db, replication

    # As `qa replica pull --every` does: one store kept from pull to pull, its FAISS loaded once.
    store = replication.replica_store(shipped, replica_dir)
    replication.pull(shipped, replica_dir, store=store)
    store.generation()
    extra = make_articles(args.squad_train, 2000, offset=10**7 + (1000 if args.reuse else 0))
    lags, one_pub, one_pull, one_mb = [], [], [], []
    for i in range(5):
        article = extra[i]
        t0 = time.perf_counter()
        writer.add_articles([article])
        committed = time.perf_counter()
        pub = replication.publish(writer.store, shipped)
        got = replication.pull(shipped, replica_dir, store=store)
        found = any(h.chunk.article_id == article.id for h in server.search(article.title, 5, mode="bm25"))
        assert found, "the new article was not found on the replica"
        lags.append(time.perf_counter() - committed)
        one_pub.append(pub.seconds)
        one_pull.append(got.seconds)
        one_mb.append(pub.bytes / 1e6)
        assert pub.kind == "delta" and got.kind == "delta", (pub, got)
        print(f"one article: commit {committed - t0:.3f} s, publish {pub.seconds:.3f} s, pull {got.seconds:.3f} s")
    results["delta_1_article"] = {
        "publish_s": round(statistics.median(one_pub), 3),
        "pull_s": round(statistics.median(one_pull), 3),
        "mb": round(statistics.median(one_mb), 3),
        "lag_after_commit_s": round(statistics.median(lags), 3),
    }
    writer.add_articles(extra[100:356])
    pub = replication.publish(writer.store, shipped)
    got = replication.pull(shipped, replica_dir, store=store)
    results["delta_256_articles"] = {
        "publish_s": round(pub.seconds, 2),
        "pull_s": round(got.seconds, 2),
        "mb": round(pub.bytes / 1e6, 2),
        "kinds": [pub.kind, got.kind],
    }
    conn = db.connect(writer.store.generation().path)
    results["change_log"] = {
        "rows": conn.execute("SELECT count(*) FROM changes").fetchone()[0],
        "floor": db.log_floor(conn),
        "seq": int(db.get_meta(conn, "seq")),
    }
    conn.close()
    whole = replication.publish(writer.store, shipped, full=True)
    results["publish_full_again"] = {"s": round(whole.seconds, 2), "mb": round(whole.bytes / 1e6, 1)}
    print(json.dumps(results, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
