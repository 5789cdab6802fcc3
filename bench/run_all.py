"""Rerun the benchmarks `make bench` runs, in turn; each writes its section of docs/benchmarks.md
(whose header lists them; the sections not listed there are rerun by hand with their command).

python -m bench.run_all --squad-dev ../shared/data/squad/dev-v1.1.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad-dev", required=True)
    args = ap.parse_args()
    runs = [
        ["bench.reader_squad", "--squad-dev", args.squad_dev],
        ["bench.retrieval_squad", "--squad-dev", args.squad_dev],
        ["bench.e2e_squad", "--squad-dev", args.squad_dev],
        ["bench.reader_backends", "--squad-dev", args.squad_dev],
        ["bench.news_eval", "--split", "dev", "--archive", "whole", "--write-docs"],
        ["bench.news_eval", "--split", "test", "--archive", "whole", "--write-docs"],
        ["bench.news_gold"],
        ["bench.followup"],
        ["bench.ask_latency"],
        ["bench.load", "--clients", "50", "--seconds", "60"],
    ]
    for run in runs:
        print("==>", " ".join(run), flush=True)
        subprocess.run([sys.executable, "-m", *run], check=True)


if __name__ == "__main__":
    main()
