"""One router per resource: `ask` (questions), `articles` (list, read, add, delete), `pages` (the
chat page and /healthz)."""
