"""Errors of the ingest stage."""

from qa.errors import QAError


class IngestError(QAError, ValueError):
    """An article that cannot be ingested; the message says why."""


class ArticleTooLargeError(IngestError):
    """An article over the size limit (HTTP 413 rather than 422)."""
