"""POST /ask: a question in, answers with their articles and offsets out."""

from __future__ import annotations

from fastapi import APIRouter, Request

from qa.answer.messages import NO_ANSWER_MESSAGE, UNSURE_MESSAGE
from qa.serve.deps import FreshPipelineDep, GateDep
from qa.serve.schemas import AnswerOut, AskRequest, AskResponse, PeriodOut

router = APIRouter(tags=["ask"])


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={
        503: {
            "description": "busy (Retry-After says when to come back), still loading, or a replica whose copy is "
            "older than QA_REPLICA_MAX_LAG_S"
        }
    },
)
async def ask(body: AskRequest, request: Request, pipeline: FreshPipelineDep, gate: GateDep) -> AskResponse:
    filters = body.filters.to_filters() if body.filters else None
    result = await gate.run(
        pipeline.ask,
        body.question,
        body.top_k,
        filters,
        body.history_turns(),
        question=True,
        client_gone=request.is_disconnected,
    )
    period = result.period
    return AskResponse(
        question=result.question,
        answers=[AnswerOut.from_answer(a) for a in result.answers],
        no_answer=result.no_answer,
        unsure=result.unsure,
        newest_first=result.newest_first,
        period=PeriodOut(
            date_from=period.date_from, date_to=period.date_to, phrase=period.phrase, filtered=period.as_of
        )
        if period
        else None,
        message=NO_ANSWER_MESSAGE if result.no_answer else UNSURE_MESSAGE if result.unsure else None,
        timing_ms=result.timing_ms,
        reading=result.reading,
    )
