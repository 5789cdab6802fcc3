"""The exceptions that are a user's problem to fix (bad input, missing index), not bugs."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    from qa.chunking import ChunkingError
    from qa.gold import GoldFormatError
    from qa.index import QAIndexError
    from qa.ingest import IngestError
    from qa.models import ModelNotFoundError
    from qa.pipeline import ArticleNotFoundError, QuestionError
    from qa.retrieval import FilterError
    from qa.squad import SquadFormatError

    return (
        ChunkingError, QAIndexError, IngestError, ModelNotFoundError, ArticleNotFoundError,
        QuestionError, FilterError, SquadFormatError, GoldFormatError, FileNotFoundError,
    )
