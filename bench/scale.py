"""Archive scale: what each index operation costs from 10k to 1M articles, and how it grows.

    python -m bench.scale --squad-train ../shared/data/squad/train-v1.1.json [--sizes 10000 50000 200000 1000000]

Articles are four SQuAD-train paragraphs each (the ~19k paragraphs are reused in turn, each
article opening with its own dispatch line, so no two articles are the same text).
Index costs are measured with a stand-in embedder (StandInEmbedder: vectors drawn around real
MiniLM passage embeddings, so they cluster as real ones do, made in microseconds), so that only
the index's own costs count; questions are embedded with the real model. Beside
it, the real embedder's cost for the same passages is measured, and "add 1 article end to end"
is the sum of both. Recall@10 of the approximate dense index is measured against exact search
over the same vectors, counting an approximate hit as right when its score reaches the exact
10th score (ties among repeated paragraphs make identity-based recall meaningless).

Retrieval (hybrid top 10, the query's vector given) is timed over 300 SQuAD questions right after
the start (the postings and pages they need come from disk: a cold start's figures), then over
300 others (a server that has been answering: most pages in the page cache); the target applies
to the second.

`/ask` during a bulk ingest: a real server over the bundled articles, real models, p95 of
questions asked one after another while idle, then while 1,000 articles are being added
through the API.

Each size's figures are saved to --work (resumable: a size already measured is not redone), with
the load average when its measurements started. The growth of each cost is plotted, log-log,
in docs/scale.png (matplotlib: the `bench` extra), and the issue's targets at 1M articles are
checked against the largest size measured, extrapolated by the growth measured below it when
that is under 1M.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import percentile, table, write_section

DIM = 384


class StandInEmbedder:
    """Vectors shaped like real ones, made in microseconds: each text gets one of a basis of
    real MiniLM passage embeddings (chosen by a hash of the text) plus a little noise of its own
    (also seeded by the text), normalised. The archive's vectors then cluster as real passages
    do, which is what approximate search's recall depends on; questions are embedded for real."""

    name = "stand-in-near-real"
    dim = DIM

    def __init__(self, basis: np.ndarray, noise: float = 0.25) -> None:
        self.basis = basis
        self.sigma = noise / np.sqrt(DIM)

    def encode(self, texts, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(h)
            out[i] = self.basis[h % len(self.basis)] + rng.normal(0, self.sigma, DIM)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def real_basis(squad_train: str, work: Path, n: int = 2000) -> np.ndarray:
    """Real MiniLM embeddings of n SQuAD-train passages (cached in `work`)."""
    path = work / f"basis-{n}.npy"
    if path.exists():
        return np.load(path)
    from qa.index.embedding import SentenceTransformerEmbedder
    from qa.ingest.chunking import Chunker

    chunker = Chunker(800, 200)
    texts = [c.text for a in make_articles(squad_train, n // 4 + 1, offset=3 * 10**7) for c in chunker.chunk(a)][:n]
    basis = SentenceTransformerEmbedder().encode(texts, progress=True)
    np.save(path, basis)
    return basis


def make_articles(squad_train: str, n: int, offset: int = 0):
    from qa.eval.squad import PARAGRAPH_SEPARATOR
    from qa.types import Article

    data = json.load(open(squad_train))["data"]
    paragraphs = [p["context"] for a in data for p in a["paragraphs"]]
    titles = [a["title"].replace("_", " ") for a in data for _ in a["paragraphs"]]
    out = []
    for i in range(offset, offset + n):
        first = (4 * i) % len(paragraphs)
        body = PARAGRAPH_SEPARATOR.join(paragraphs[(first + j) % len(paragraphs)] for j in range(4))
        lede = f"Dispatch {i} from desk {i % 97}, {2000 + i % 25}."
        out.append(
            Article(
                f"art{i}",
                f"{titles[first]} ({i})",
                lede + PARAGRAPH_SEPARATOR + body,
                date=f"{2000 + i % 25}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                source="squad-train",
            )
        )
    return out


def rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that over an
    exec from the parent at fork time, so a child of the builder would report the builder's."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


# ---- one size, in a fresh process so that RSS and cold start are its own ---------------------
def measure(squad_train: str, n: int, work: Path, questions: dict[str, list[str]], keep_index: bool) -> dict:
    """Build in this process; measure start, search and writes in a fresh child. A kept index
    (`keep_index`) is measured again as it is when its size-N.json is deleted; the child's
    writes (105 added, 5 of them deleted) change it by 0.01% of 1M."""
    from qa.config import Settings
    from qa.pipeline import QAPipeline

    index_dir = work / f"index-{n}"
    built = work / f"built-{n}.json"  # a kept index (--keep-index) is measured again, not rebuilt
    if not (built.exists() and index_dir.exists()):
        shutil.rmtree(index_dir, ignore_errors=True)
        articles = make_articles(squad_train, n)
        p = QAPipeline(Settings(index_dir=index_dir), embedder=StandInEmbedder(np.load(work / "basis-2000.npy")))
        t = time.perf_counter()
        p.build_from_articles(articles, progress=False, batch_articles=2000)
        build_s = time.perf_counter() - t
        built.write_text(json.dumps({"build_s": build_s, "passages": p.counts().passages}))
        del p, articles
    build = json.loads(built.read_text())
    # The articles the child adds, made here: loading SQuAD in the child would count in its RSS.
    fresh = work / f"fresh-{n}.json"
    fresh.write_text(json.dumps([asdict(a) for a in make_articles(squad_train, 110, offset=n + 10)]))
    # Cold start and everything after it in a child: its RSS is the serving process's.
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--child",
            str(index_dir),
            "--squad-train",
            squad_train,
            "--n",
            str(n),
            "--work",
            str(work),
        ],
        input=json.dumps(questions),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(child.stderr[-3000:])
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result.update(
        articles=n, passages=build["passages"], build_s=round(build["build_s"], 1), disk_mb=round(disk_mb(index_dir), 0)
    )
    if not keep_index:
        shutil.rmtree(index_dir, ignore_errors=True)
        built.unlink()
    return result


def _timed_retrievals(p: Any, questions: list[str], vectors: np.ndarray) -> list[float]:
    """Milliseconds of each retrieval (top 10, hybrid), the query already embedded."""
    times = []
    for q, v in zip(questions, vectors, strict=True):
        t = time.perf_counter()
        p.retriever.retrieve(q, 10, vector=v)
        times.append(1000 * (time.perf_counter() - t))
    return times


def child(index_dir: str, squad_train: str, n: int, work: Path) -> None:
    from qa.config import Settings
    from qa.index import db
    from qa.pipeline import QAPipeline
    from qa.types import Article

    asked = json.loads(sys.stdin.read())
    questions, warm_questions = asked["measured"], asked["warm_up"]
    vectors = np.load(work / "questions.npy")  # real MiniLM embeddings of the questions
    warm_vectors = np.load(work / "warm-up.npy")
    embedder = StandInEmbedder(np.load(work / "basis-2000.npy"))
    load_at_start = os.getloadavg()[0]
    t = time.perf_counter()
    p = QAPipeline(Settings(index_dir=index_dir), embedder=embedder)
    p.load()
    cold_s = time.perf_counter() - t
    gen = p.store.generation()
    # The first questions after a start read the lexical index's postings and SQLite's pages
    # from disk; a server that has been answering has most of them in the page cache. So: 300
    # other questions first (timed: the figures of a cold start), then the 300 measured ones.
    cold = _timed_retrievals(p, warm_questions, warm_vectors)
    times = _timed_retrievals(p, questions, vectors)
    serving_rss = rss_mb()  # peak so far: start and searches (no models: the stand-in embedder)
    # Approximate vs exact dense top 10 over the same stored vectors.
    recall: dict | None = None
    if gen.dense.kind == "ivf":
        conn = db.connect(gen.path)
        conn.execute("BEGIN")
        sample = vectors[:200]
        best = np.full((len(sample), 10), -np.inf, np.float32)
        for _, batch in db.iter_vectors(conn, DIM, batch=50_000):
            scores = sample @ batch.T
            best = -np.sort(
                -np.hstack([best, np.partition(scores, -min(10, scores.shape[1]), axis=1)[:, -10:]]), axis=1
            )[:, :10]
        conn.execute("COMMIT")
        import faiss

        ivf = faiss.extract_index_ivf(gen.dense.index)
        default_nprobe = ivf.nprobe
        by_nprobe = {}
        for nprobe in sorted({16, 32, default_nprobe, 64, 128, 256}):
            ivf.nprobe = nprobe
            hits, ms = [], []
            for v, exact in zip(sample, best, strict=True):
                t = time.perf_counter()
                with gen.read(v, 10) as (view, dense):
                    ms.append(1000 * (time.perf_counter() - t))
                    # IVF-SQ8's scores are approximate (8-bit vectors): score the ids it found
                    # with their stored float vectors before comparing with the exact 10th.
                    _, found = db.vectors(view.conn, [pid for pid, _ in dense], DIM)
                got = found @ v
                hits.append(float((got >= exact[-1] - 1e-5).sum()) / 10)
            by_nprobe[nprobe] = (round(float(np.mean(hits)), 4), percentile(ms, 50))
        ivf.nprobe = default_nprobe
        recall = {"nlist": ivf.nlist, "default_nprobe": default_nprobe, "by_nprobe": by_nprobe}
    # Writes: add 1 (p50 of 5), add 100 (once), delete 1 (p50 of 5).
    fresh = [Article(**a) for a in json.loads((work / f"fresh-{n}.json").read_text())]
    add1 = []
    for a in fresh[:5]:
        t = time.perf_counter()
        p.add_articles([a])
        add1.append(1000 * (time.perf_counter() - t))
    t = time.perf_counter()
    p.add_articles(fresh[5:105])
    add100_s = time.perf_counter() - t
    delete1 = []
    for a in fresh[:5]:
        t = time.perf_counter()
        p.delete_article(a.id)
        delete1.append(1000 * (time.perf_counter() - t))
    print(
        json.dumps(
            {
                "load_average": round(load_at_start, 2),
                "cold_start_s": round(cold_s, 2),
                "dense_kind": gen.dense.kind,
                "retrieval_p50_ms": percentile(times, 50),
                "retrieval_p95_ms": percentile(times, 95),
                "retrieval_cold_p50_ms": percentile(cold, 50),
                "retrieval_cold_p95_ms": percentile(cold, 95),
                "recall_at_10": recall,
                "add1_ms": round(statistics.median(add1), 1),
                "add100_s": round(add100_s, 2),
                "delete1_ms": round(statistics.median(delete1), 1),
                "rss_mb": round(serving_rss, 0),
                "rss_after_writes_mb": round(rss_mb(), 0),
            }
        )
    )


# ---- the real embedder, for the end-to-end figures ---------------------------------------------
def real_embedding_costs(squad_train: str, questions: list[str]) -> dict:
    from qa.index.embedding import SentenceTransformerEmbedder
    from qa.ingest.chunking import Chunker
    from qa.loading import configure_torch_threads

    configure_torch_threads(2)
    embedder = SentenceTransformerEmbedder()
    chunker = Chunker(800, 200)
    articles = make_articles(squad_train, 60, offset=10**7)
    embedder.encode(["warm up"])
    per_article = []
    for a in articles[:10]:
        texts = [c.text for c in chunker.chunk(a)]
        t = time.perf_counter()
        embedder.encode(texts)
        per_article.append(1000 * (time.perf_counter() - t))
    texts = [c.text for a in articles for c in chunker.chunk(a)]
    t = time.perf_counter()
    embedder.encode(texts)
    throughput = len(texts) / (time.perf_counter() - t)
    q_ms = []
    for q in questions[:100]:
        t = time.perf_counter()
        embedder.encode([q])
        q_ms.append(1000 * (time.perf_counter() - t))
    return {
        "embed_article_ms": round(statistics.median(per_article), 1),
        "passages_per_s": round(throughput, 1),
        "query_embed_ms": round(statistics.median(q_ms), 1),
    }


# ---- /ask while a bulk ingest runs --------------------------------------------------------------
def ask_during_ingest(squad_train: str, n_articles: int) -> dict:
    import tempfile

    import httpx

    from bench.server_process import ServerProcess
    from qa.eval.gold import load_gold

    root = Path(__file__).resolve().parent.parent
    gold = [q.question for q in load_gold(root / "seeds" / "gold" / "news_gold.jsonl").questions]
    token = "bench-token"
    bulk = [
        {"id": a.id, "title": a.title, "text": a.text.split("\n\n")[1][:700], "date": a.date}
        for a in make_articles(squad_train, n_articles, offset=2 * 10**7)
    ]

    def timed_questions(url: str, stop: threading.Event | None, rounds: int) -> list[float]:
        out: list[float] = []
        for _ in range(rounds):
            for q in gold:
                if stop is not None and stop.is_set():
                    return out
                t = time.perf_counter()
                httpx.post(f"{url}/ask", json={"question": q}, timeout=120).raise_for_status()
                out.append(1000 * (time.perf_counter() - t))
        return out

    tmp = Path(tempfile.mkdtemp(prefix="qa-bench-scale-"))
    with ServerProcess(tmp / "index", tmp / "server.log", token=token, timeout_s=900) as server:
        url = server.url
        timed_questions(url, None, 1)  # warm
        idle = timed_questions(url, None, 2)
        done = threading.Event()
        added = {"n": 0, "s": 0.0}

        def ingest() -> None:
            t = time.perf_counter()
            for i in range(0, len(bulk), 100):
                r = httpx.post(
                    f"{url}/articles",
                    json={"articles": bulk[i : i + 100]},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=600,
                )
                r.raise_for_status()
                added["n"] += len(bulk[i : i + 100])
            added["s"] = time.perf_counter() - t
            done.set()

        writer = threading.Thread(target=ingest, daemon=True)
        writer.start()
        busy = timed_questions(url, done, 1000)
        writer.join()
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "idle_p50": percentile(idle, 50),
        "idle_p95": percentile(idle, 95),
        "busy_p50": percentile(busy, 50),
        "busy_p95": percentile(busy, 95),
        "busy_n": len(busy),
        "ingested": added["n"],
        "ingest_s": round(added["s"], 1),
    }


# ---- growth: the targets at 1M articles, and the plot ----------------------------------
TARGET_ARTICLES = 1_000_000
# (label, how to read it from one size's figures, target, unit); "add 1" counts the real embedding.
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("add 1 article (index + real embedding)", "add1_total_ms", 1000, "ms"),
    ("delete 1 article", "delete1_ms", 500, "ms"),
    ("cold start", "cold_start_s", 10, "s"),
    ("serving RSS (index)", "rss_mb", 3000, "MB"),
    ("retrieval p95 (after 300 other questions), no query embedding", "retrieval_p95_ms", 25, "ms"),
)


def at_target_size(sizes: list[int], values: list[float]) -> tuple[float, str]:
    """The value at TARGET_ARTICLES: measured, or extrapolated from the two largest sizes by
    their log-log slope (a cost growing as n^k keeps growing as n^k)."""
    if sizes[-1] >= TARGET_ARTICLES or len(sizes) < 2:
        return values[-1], f"measured at {sizes[-1]:,}"
    (n_a, c_a), (n_b, c_b) = (sizes[-2], values[-2]), (sizes[-1], values[-1])
    slope = float(np.log(max(c_b, 1e-9) / max(c_a, 1e-9)) / np.log(n_b / n_a))
    return c_b * (TARGET_ARTICLES / n_b) ** slope, f"extrapolated from {n_a:,}-{n_b:,} (n^{slope:.2f})"


def cost_values(results: dict[int, dict], real: dict, key: str) -> list[float]:
    """One cost at each size, smallest first; "add1_total_ms" adds the real embedding's cost."""
    extra = real["embed_article_ms"] if key == "add1_total_ms" else 0.0
    return [results[n]["add1_ms" if key == "add1_total_ms" else key] + extra for n in sorted(results)]


def target_rows(results: dict[int, dict], real: dict) -> list[tuple[str, ...]]:
    sizes = sorted(results)
    rows: list[tuple[str, ...]] = []
    for label, key, target, unit in TARGETS:
        value, how = at_target_size(sizes, cost_values(results, real, key))
        verdict = "met" if value <= target else "NOT met"
        rows.append((label, f"{value:,.1f} {unit}", how, f"≤ {target:,} {unit}", verdict))
    return rows


def plot_growth(results: dict[int, dict], real: dict, path: Path) -> None:
    """Each cost against the archive's size, log-log, with its target at 1M as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    panels = [*TARGETS, ("build (whole archive)", "build_s", 0, "s")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (label, key, target, unit) in zip(axes.flat, panels, strict=True):
        ax.loglog(sizes, cost_values(results, real, key), "o-", label="measured")
        if target:
            ax.axhline(target, color="tab:red", linestyle="--", label=f"target at 1M: {target:,} {unit}")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("articles")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Index costs against archive size (bench/scale.py; 5 passages an article)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad-train", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000, 1_000_000])
    ap.add_argument("--work", default="/tmp/qa-bench-scale", help="folder for the indexes and per-size results")
    ap.add_argument("--bulk-articles", type=int, default=1000)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--keep-index",
        action="store_true",
        help="keep each size's index in --work, to measure it again on a quieter machine",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    if args.child:
        child(args.child, args.squad_train, args.n, work)
        return
    work.mkdir(parents=True, exist_ok=True)
    data = json.load(open(args.squad_train))["data"]
    every_question = [qa["question"] for a in data for p in a["paragraphs"] for qa in p["qas"]]
    questions = every_question[::97][:300]
    warm_up = every_question[48::97][:300]  # other questions, from the same spread of articles
    real_basis(args.squad_train, work)
    for name, texts in (("questions.npy", questions), ("warm-up.npy", warm_up)):
        if not (work / name).exists():
            from qa.index.embedding import SentenceTransformerEmbedder

            np.save(work / name, SentenceTransformerEmbedder().encode(texts))
    load = os.getloadavg()[0]
    results = {}
    for n in args.sizes:
        saved = work / f"size-{n}.json"
        if saved.exists():
            results[n] = json.loads(saved.read_text())
            continue
        print(f"measuring {n} articles ...", flush=True)
        results[n] = measure(args.squad_train, n, work, {"measured": questions, "warm_up": warm_up}, args.keep_index)
        saved.write_text(json.dumps(results[n]))
        print(results[n], flush=True)
    real = real_embedding_costs(args.squad_train, questions)
    print(real, flush=True)
    during = ask_during_ingest(args.squad_train, args.bulk_articles)
    print(during, flush=True)
    rows = []
    for n, r in results.items():
        rows.append(
            (
                f"{n:,}",
                f"{r['passages']:,}",
                f"{r.get('load_average', float('nan')):.1f}",
                r["dense_kind"],
                f"{r['build_s']:.0f} s",
                f"{r['add1_ms']:.0f} ms",
                f"{r['add1_ms'] + real['embed_article_ms']:.0f} ms",
                f"{r['add100_s']:.1f} s",
                f"{r['delete1_ms']:.0f} ms",
                f"{r['cold_start_s']:.1f} s",
                f"{r['retrieval_cold_p50_ms']} / {r['retrieval_cold_p95_ms']} ms",
                f"{r['retrieval_p50_ms']} / {r['retrieval_p95_ms']} ms",
                f"{r['retrieval_p50_ms'] + real['query_embed_ms']:.1f} ms",
                "exact"
                if r["recall_at_10"] is None
                else f"{r['recall_at_10']['by_nprobe'][str(r['recall_at_10']['default_nprobe'])][0]:.3f}",
                f"{r['rss_mb']:.0f} / {r.get('rss_after_writes_mb', 0):.0f} MB",
                f"{r['disk_mb']:.0f} MB",
            )
        )
    body = (
        f"Load average at the start: {load:.2f}. Index costs with the stand-in embedder (see the script's docstring); "
        f"real MiniLM embedding measured beside it: {real['passages_per_s']} passages/s, {real['embed_article_ms']} ms "
        f"for one article's passages, {real['query_embed_ms']} ms per question.\n\n"
        + table(
            rows,
            (
                "articles",
                "passages",
                "load average",
                "dense index",
                "build",
                "add 1 (index)",
                "add 1 (with real embedding)",
                "add 100 (index)",
                "delete 1",
                "cold start",
                "retrieval p50 / p95, the first 300 questions after the start",
                "retrieval p50 / p95, 300 questions after those (no query embedding)",
                "retrieval p50 with real query embedding",
                "approx. recall@10 vs exact",
                "peak RSS, index only: serving / after writes",
                "disk",
            ),
        )
        + f"\n\n`/ask` on the bundled articles (real models), questions one after another: "
        f"idle p50 {during['idle_p50']} ms, "
        f"p95 {during['idle_p95']} ms; while {during['ingested']} articles were added through `POST /articles` "
        f"(in {during['ingest_s']} s, {during['busy_n']} questions answered meanwhile): p50 {during['busy_p50']} ms, "
        f"p95 {during['busy_p95']} ms ({during['busy_p95'] / during['idle_p95']:.2f}x idle).\n"
    )
    ivf_rows = [
        (f"{n:,}", r["recall_at_10"]["nlist"], nprobe, f"{rec:.3f}", f"{ms} ms")
        for n, r in results.items()
        if r["recall_at_10"]
        for nprobe, (rec, ms) in sorted(r["recall_at_10"]["by_nprobe"].items(), key=lambda kv: int(kv[0]))
    ]
    if ivf_rows:
        body += (
            "\nApproximate dense search (IVF-SQ8) against exact, 200 real questions: recall@10 and the dense "
            "search's p50 by lists probed (the default is `QA_IVF_NPROBE`).\n\n"
            + table(ivf_rows, ("articles", "lists", "probed", "recall@10", "dense search p50"))
            + "\n"
        )
    body += (
        f"\nThe targets at {TARGET_ARTICLES:,} articles (issue 29); the growth of each cost is plotted in "
        "[scale.png](scale.png).\n\n"
        + table(target_rows(results, real), ("cost", f"at {TARGET_ARTICLES:,}", "how", "target", ""))
        + "\n"
    )
    print(body)
    if not args.no_write:
        plot_growth(results, real, Path(__file__).resolve().parent.parent / "docs" / "scale.png")
        write_section("scale", "Archive scale: index costs from 10k to 1M articles", body)


if __name__ == "__main__":
    main()
