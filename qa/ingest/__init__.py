"""Stage 1, ingest: files (text, Markdown, HTML, JSONL) in -> `Article`s out (readers.py);
then `Article` in -> `Chunk` passages with exact character offsets out (chunking.py)."""
