"""Two runs of the same questions side by side: each figure's change with a paired bootstrap 95%
interval (the same resampled questions for both runs, so what both get right or wrong cancels).

    python -m bench.news_compare eval-out/BEFORE eval-out/AFTER [--write-docs NAME]

Each folder is one `qa eval` / `bench.news_eval` output (questions.csv).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from bench.report import table, write_section
from qa.eval.intervals import RESAMPLES, SEED, figures


def load(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "questions.csv", newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def arrays(rows: dict[str, dict[str, str]], ids: list[str]) -> tuple[np.ndarray, ...]:
    pick = [rows[i] for i in ids]
    return (
        np.array([float(r["f1"]) for r in pick]),
        np.array([float(r["em"]) for r in pick]),
        np.array([r["answerable"] == "True" for r in pick]),
        np.array([r["no_answer"] == "True" for r in pick]),
    )


def compare(before: dict, after: dict, ids: list[str]) -> list[tuple]:
    """(figure, before, after, change, change's 95% interval) for each figure."""
    b, a = arrays(before, ids), arrays(after, ids)
    rows_drawn = np.random.default_rng(SEED).integers(0, len(ids), size=(RESAMPLES, len(ids)))
    drawn_before, drawn_after = figures(*(x[rows_drawn] for x in b)), figures(*(x[rows_drawn] for x in a))
    point_before, point_after = figures(*b), figures(*a)
    out = []
    for name in point_before:
        fb, fa = point_before[name], point_after[name]
        diff = drawn_after[name] - drawn_before[name]
        d = diff[np.isfinite(diff)]
        lo, hi = np.percentile(d, [2.5, 97.5]) if len(d) else (np.nan, np.nan)
        out.append((name, f"{fb:.1f}", f"{fa:.1f}", f"{fa - fb:+.1f}", f"{lo:+.1f} to {hi:+.1f}"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tag", help="only questions with this tag (e.g. followup)")
    ap.add_argument("--write-docs", metavar="NAME", help="write the table into docs/benchmarks.md as section NAME")
    args = ap.parse_args()
    before, after = load(args.before), load(args.after)
    ids = [i for i in before if i in after and (not args.tag or args.tag in before[i].get("tags", "").split())]
    body = f"{len(ids)} questions{f' tagged {args.tag}' if args.tag else ''}, `{args.before}` then `{args.after}`:\n\n"
    body += table(compare(before, after, ids), ["figure", "before", "after", "change", "paired 95% interval"])
    print(body)
    if args.write_docs:
        tagged = f", {args.tag} questions" if args.tag else ""
        write_section(args.write_docs, f"Side by side: {args.before.name} and {args.after.name}{tagged}", body)


if __name__ == "__main__":
    main()
