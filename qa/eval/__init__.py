"""Evaluation: gold sets in (gold.py, squad.py) -> EM/F1, recall@k, abstention and latency out
(metrics.py, runner.py)."""
