"""Stage 5, answer: `Span`s and `Hit`s in -> `Answer`s (merged, rank-discounted, cut at the
no-answer threshold) out (assemble.py), each with a calibrated confidence (calibration.py)."""
