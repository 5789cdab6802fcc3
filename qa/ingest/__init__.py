"""Stage 1, ingest: article files (text, Markdown, HTML, JSONL) in -> `Article`s out (files.py,
news pages through pages.py); then `Article` in -> `Chunk` passages with exact character
offsets out (chunking.py)."""
