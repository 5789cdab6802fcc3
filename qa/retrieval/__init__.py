"""Stage 3, retrieval: a question (plus, for follow-ups, its history: followup.py) in ->
`Hit`s out, dense and lexical top-k fused by reciprocal rank (hybrid.py)."""
