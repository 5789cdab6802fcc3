"""The web layer: HTTP in -> `QAPipeline` -> JSON and the chat page out (app.py), request and
response schemas (schemas.py), and the guards that keep a running server healthy (guards.py)."""
