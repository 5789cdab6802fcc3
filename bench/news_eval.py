"""The news benchmark (bench/news/): questions over real news, asked as a user asks them.

    python -m bench.news_eval --split dev                      # tune on this
    python -m bench.news_eval --split test --write-docs        # report this (never tune on it)
    python -m bench.news_eval --split test --archive slice --guard bench/news/baseline.json

The archive is what a newsroom would have indexed: the 164 bundled articles and all 19,043
Reuters stories of 1987 (`--reuters`, development data, never shipped), in one index. `--archive
slice` keeps the bundled articles, every Reuters story a question names and every
SLICE_EVERY-th other story as distractors: an index that builds in a minute or two, for CI.
The index is kept in `--index-dir` and reused while the articles and settings it was built from
are the same (a digest of both, in BUILT_FROM).

Every question goes through `QAPipeline.ask` (qa eval's path): the figures are what a user gets.
`--guard FILE` fails (exit 1) when F1, follow-up F1 or no-answer precision falls below the lower
end of the 95% interval that FILE records for the reader backend in use; `--record FILE` writes it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from bench.report import load_average, table, write_section
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.eval.runner import evaluate, write_report
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT / "bench" / "news"
REUTERS = ROOT.parent / "shared" / "data" / "reuters21578" / "reuters21578.jsonl"
SLICE_EVERY = 24  # about 800 distractor stories: the slice (about 1,250 articles) indexes in about a minute on 2 cores
GUARDED = ("f1", "tag:followup f1", "no_answer_precision")


def question_article_ids(paths: list[Path]) -> set[str]:
    """Every article a question answers from or is about (the slice must hold them)."""
    ids: set[str] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                ids.update(x for x in (row.get("article_id"), row.get("near_article_id")) if x)
    return ids


def archive_files(archive: str, reuters: Path, workdir: Path) -> list[Path]:
    """The article files to index: the bundled articles and Reuters (all, or the slice)."""
    seeds = ROOT / "seeds" / "articles"
    if archive == "whole":
        return [seeds, reuters]
    keep = question_article_ids(sorted(NEWS.glob("*.jsonl")))
    sliced = workdir / "reuters-slice.jsonl"
    workdir.mkdir(parents=True, exist_ok=True)
    with open(reuters, encoding="utf-8") as src, open(sliced, "w", encoding="utf-8") as out:
        for n, line in enumerate(src):
            if n % SLICE_EVERY == 0 or json.loads(line)["id"] in keep:
                out.write(line)
    return [seeds, sliced]


def digest(files: list[Path], settings: Settings) -> str:
    """What an index was built from: the article files' bytes and the settings that shape it."""
    h = hashlib.sha256()
    for f in files:
        for p in sorted(f.rglob("*")) if f.is_dir() else [f]:
            if p.is_file():
                h.update(p.name.encode() + p.read_bytes())
    h.update(f"{settings.chunk_size}:{settings.chunk_overlap}:{settings.embedder_path}".encode())
    if settings.passage_embedder != "torch":  # torch: the digest of indexes built before the setting
        h.update(settings.passage_embedder.encode())
    return h.hexdigest()[:16]


def open_archive(settings: Settings, archive: str, reuters: Path, index_dir: Path) -> QAPipeline:
    files = archive_files(archive, reuters, index_dir.parent / f"{index_dir.name}.src")
    want = digest(files, settings)
    marker = index_dir / "BUILT_FROM"
    pipeline = QAPipeline(settings.model_copy(update={"index_dir": index_dir}))
    if marker.exists() and marker.read_text().strip() == want:
        pipeline.load()
        return pipeline
    shutil.rmtree(index_dir, ignore_errors=True)
    t0 = time.perf_counter()
    report = pipeline.build(files, progress=True)
    print(f"indexed {len(report.articles)} articles in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    marker.write_text(want + "\n")
    return pipeline


def guarded_figures(summary: dict) -> dict[str, tuple[float | None, list[float] | None]]:
    """The guarded figures with their 95% intervals."""
    groups = summary["groups"]
    followup = groups.get("tag:followup", {})
    iv = summary["intervals"]
    return {
        "f1": (iv["f1"], iv["f1_95ci"]),
        "tag:followup f1": (followup.get("f1"), followup.get("f1_95ci")),
        "no_answer_precision": (iv["no_answer_precision"], iv["no_answer_precision_95ci"]),
    }


def check_guard(summary: dict, baseline_file: Path) -> list[str]:
    """The guarded figures that fell below the lower end of the baseline's interval."""
    backend = summary["reader_backend"]
    baselines = json.loads(baseline_file.read_text())
    if backend not in baselines:
        return [f"{baseline_file} has no baseline for reader backend {backend}: record one with --record"]
    failures = []
    now = guarded_figures(summary)
    for name in GUARDED:
        base, interval = baselines[backend][name]
        value = now[name][0]
        if value is None or (interval and value < interval[0]):
            failures.append(f"{name}: {value} < {interval[0]} (baseline {base}, 95% interval {interval})")
    return failures


def record(summary: dict, baseline_file: Path) -> None:
    baselines = json.loads(baseline_file.read_text()) if baseline_file.exists() else {}
    baselines[summary["reader_backend"]] = {k: list(v) for k, v in guarded_figures(summary).items()}
    baseline_file.write_text(json.dumps(baselines, indent=1, sort_keys=True) + "\n")
    print(f"recorded the baseline for {summary['reader_backend']} in {baseline_file}", file=sys.stderr)


def cell(group: dict, key: str) -> str:
    value, interval = group.get(key), group.get(f"{key}_95ci")
    if value is None or interval is None:
        return "-"
    return f"{value:.1f} ({interval[0]:.1f}-{interval[1]:.1f})"


def report_body(summary: dict, split: str, archive: str, articles: int, seconds: float) -> str:
    rows = [("all", summary["questions"], *(cell(summary["intervals"], k) for k in REPORTED))]
    for name, group in summary["groups"].items():
        rows.append((name, group["questions"], *(cell(group, k) for k in REPORTED)))
    return (
        f"Split **{split}** of bench/news ({summary['questions']} questions, {summary['unanswerable']} unanswerable), "
        f"asked through `QAPipeline.ask` over the {archive} archive ({articles} articles indexed together); reader "
        f"{summary['reader_backend']}, no-answer threshold {summary['no_answer_threshold']}. Figures in %, with "
        f"bootstrap 95% intervals. {seconds:.0f} s for all questions; load average {load_average()} after.\n\n"
        + table(rows, ["questions", "n", "F1", "EM", "no-answer precision", "no-answer recall"])
        + f"\n\nRecall@1/5/10 of a passage holding the answer: {summary.get('recall@1')} / "
        f"{summary.get('recall@5')} / {summary.get('recall@10')}; answerable F1 without abstention "
        f"{summary['answerable_f1_without_abstention']}; misses {summary['misses']}."
    )


REPORTED = ("f1", "exact_match", "no_answer_precision", "no_answer_recall")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--archive", choices=("whole", "slice"), default="whole")
    ap.add_argument("--reuters", type=Path, default=REUTERS, help="the Reuters-21578 article JSONL")
    ap.add_argument(
        "--index-dir", type=Path, help="where the archive's index is kept (default eval-out/news-ARCHIVE-index)"
    )
    ap.add_argument("--out", type=Path, help="folder for summary.json and questions.csv (default eval-out/news-SPLIT)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--guard", type=Path, help="baseline file: exit 1 when a guarded figure falls below it")
    ap.add_argument("--record", type=Path, help="write the guarded figures as the baseline for this reader backend")
    ap.add_argument("--write-docs", action="store_true", help="write the figures into docs/benchmarks.md")
    args = ap.parse_args()
    if not args.reuters.is_file():
        ap.error(f"{args.reuters}: no such file (the Reuters-21578 JSONL; see ../shared/data/reuters21578)")
    settings = Settings()
    configure_torch_threads(settings.threads)
    index_dir = args.index_dir or ROOT / "eval-out" / f"news-{args.archive}-index"
    pipeline = open_archive(settings, args.archive, args.reuters, index_dir)
    gold = load_gold(NEWS / f"{args.split}.jsonl")
    t0 = time.perf_counter()
    results, summary = evaluate(pipeline, gold, progress=True, limit=args.limit)
    seconds = time.perf_counter() - t0
    summary.update({"split": args.split, "archive": args.archive, "articles": pipeline.counts().articles})
    write_report(args.out or ROOT / "eval-out" / f"news-{args.split}-{args.archive}", results, summary)
    body = report_body(summary, args.split, args.archive, pipeline.counts().articles, seconds)
    print(body)
    if args.write_docs:
        write_section(
            f"news-{args.split}-{args.archive}", f"News benchmark, {args.split} split, {args.archive} archive", body
        )
    if args.record:
        record(summary, args.record)
    if args.guard:
        failures = check_guard(summary, args.guard)
        for failure in failures:
            print(f"news guard: {failure}", file=sys.stderr)
        if failures:
            return 1
        print(f"news guard: {', '.join(GUARDED)} hold against {args.guard}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
