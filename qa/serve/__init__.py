"""The web layer: HTTP in -> `QAPipeline` -> JSON and the chat page out. app.py wires the parts:
routers/ (one per resource: ask, articles, pages), deps.py (what routes share, as FastAPI
dependencies), schemas.py (request and response bodies), guards.py (request-level guards: model
gate, body limit, admin check, access log) and server.py (uvicorn with connection-level guards)."""
