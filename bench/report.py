"""Write one benchmark's figures into its own section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Generated: every section below is written by the command in its `command:` line (through
`bench/report.py`), between its two `bench:NAME` comments, with its date and machine; a
rerun replaces it. Nothing else is written here by hand: what the figures mean, how they were
reached, and measurements no script repeats are in [benchmark-notes.md](benchmark-notes.md).
Figures are medians or totals from one run on the machine described; ratios are measured side
by side in the same run. These machines are shared and noisy: compare within a section, not
across days.

`make bench` (`bench/run_all.py`) reruns reader_squad, retrieval_squad, e2e_squad,
reader_backends, news-dev-whole, news-test-whole, news_gold, followup, ask_latency and load.
The others are rerun by hand with their own command: calibration and calibration-onnx-int8
(`bench.calibrate`: refitting them changes the shipped calibration), scale (`bench.scale`, hours
and the SQuAD train file), query_encoders, and the side-by-side sections (`bench.news_compare`
of two saved runs).
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}; {cpu_paths()}), Python {platform.python_version()}, {load()}"


def cpu_paths() -> str:
    """The CPU features the fast paths depend on (`lscpu` flags): bf16 autocast and int8 dot products."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    except OSError:
        return "CPU flags unknown"
    has = {name: name in flags for name in ("avx512_bf16", "avx512_vnni", "avx_vnni", "avx2")}
    return ", ".join(f"{'' if ok else 'no '}{name.upper()}" for name, ok in has.items())


def load() -> str:
    return f"load average {load_average()} when written"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, to 0.1 (None for no values)."""
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def paired(after: np.ndarray, before: np.ndarray) -> str:
    """The mean of per-question differences (after - before, in their unit: points), with its 95%
    interval (normal approximation): "+0.12 ± 0.30"."""
    diff = np.asarray(after, float) - np.asarray(before, float)
    half = 1.96 * float(np.std(diff, ddof=1)) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return f"{diff.mean():+.2f} ± {half:.2f}"


def command() -> str:
    return " ".join(["python -m", f"bench.{Path(sys.argv[0]).stem}", *map(shlex.quote, sys.argv[1:])])


def write_section(name: str, title: str, body: str, doc: Path = DOC) -> None:
    doc.parent.mkdir(exist_ok=True)
    text = doc.read_text() if doc.exists() else HEADER
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- machine: {machine()}\n"
        f"- command: `{command()}`\n\n{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    doc.write_text(text)
    print(f"wrote section '{name}' of {doc}")


def table(rows: Sequence[Sequence[object]], header: Sequence[object]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)
