"""The exceptions that are a user's problem to fix (bad input, missing index), not bugs."""

from __future__ import annotations


class QAError(Exception):
    """A problem the user can fix (bad input, a missing or damaged index); the CLI prints its
    message and the API turns it into a 4xx."""


def user_error_types() -> tuple[type[BaseException], ...]:
    from qa.ingest.chunking import ChunkingError
    from qa.eval.gold import GoldFormatError
    from qa.index.store import QAIndexError
    from qa.ingest.readers import IngestError
    from qa.models import ModelNotFoundError
    from qa.pipeline import ArticleNotFoundError, QuestionError
    from qa.retrieval.hybrid import FilterError
    from qa.eval.squad import SquadFormatError

    return (
        ChunkingError, QAIndexError, IngestError, ModelNotFoundError, ArticleNotFoundError,
        QuestionError, FilterError, SquadFormatError, GoldFormatError, FileNotFoundError,
    )
