"""Gold sets for evaluation: SQuAD JSON (v1.1/v2.0), MRQA JSONL (.jsonl/.jsonl.gz) or our JSONL,
validated before anything runs. SQuAD and MRQA files bring their own articles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qa.errors import QAError
from qa.eval.mrqa import MrqaFormatError, is_mrqa, load_mrqa
from qa.eval.squad import PARAGRAPH_SEPARATOR, SquadFormatError, article_paragraphs, load_squad
from qa.types import Article, Turn


class GoldFormatError(QAError, ValueError):
    """A malformed gold file; the message names the line or field."""


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # empty: the articles do not answer it
    article_id: str | None = None  # where the answer is, when known
    answer_spans: tuple[tuple[int, int], ...] = ()  # gold character spans in that article
    history: tuple[Turn, ...] = ()  # a conversation's earlier turns, oldest first: asked as a follow-up
    category: str = ""  # who, what, when, where, how_many, ... (reports break figures down by it)
    tags: tuple[str, ...] = ()  # e.g. paraphrased, shared_name, present, unanswerable, followup


@dataclass
class GoldSet:
    questions: list[GoldQuestion]
    articles: list[Article]  # the gold file's own corpus (SQuAD, MRQA), else empty


def _is_squad(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith(b"{"):
        return False
    try:
        first_line = head.split(b"\n", 1)[0]
        obj = json.loads(first_line)
        return "data" in obj  # a whole SQuAD file on one line
    except json.JSONDecodeError:
        return b'"data"' in head or b'"version"' in head


def load_gold(path: str | Path) -> GoldSet:
    path = Path(path)
    if not path.is_file():
        raise GoldFormatError(f"{path}: no such file")
    if _is_squad(path):
        return _load_squad_gold(path)
    if is_mrqa(path):
        return _load_mrqa_gold(path)
    return _load_jsonl_gold(path)


class _Corpus:
    """A gold file's articles. Entries are kept apart even when they share a title (converted
    NewsQA files title every story "newsqa"); two entries are one article only when their
    text is the same, character for character."""

    def __init__(self, prefix: str, source: str) -> None:
        self.prefix, self.source = prefix, source
        self.articles: list[Article] = []
        self._by_text: dict[str, str] = {}

    def add(self, title: str, text: str) -> str:
        """The id of the article with this text, added if it is new."""
        if text not in self._by_text:
            article_id = f"{self.prefix}-{len(self.articles):03d}"
            self._by_text[text] = article_id
            self.articles.append(Article(id=article_id, title=title, text=text, source=self.source))
        return self._by_text[text]


def _load_squad_gold(path: Path) -> GoldSet:
    try:
        rows = load_squad(path)
    except SquadFormatError as exc:
        raise GoldFormatError(str(exc)) from exc
    # Each entry of `data` becomes one document: its paragraphs joined by blank lines.
    corpus = _Corpus("squad", "SQuAD")
    ids: dict[int, str] = {}
    paragraph_offsets: dict[tuple[int, int], int] = {}
    titles = {q.article_index: q.title for q in rows}
    for entry, paras in article_paragraphs(rows).items():
        offset = 0
        for i, p in enumerate(paras):
            paragraph_offsets[(entry, i)] = offset
            offset += len(p) + len(PARAGRAPH_SEPARATOR)
        ids[entry] = corpus.add(titles[entry].replace("_", " "), PARAGRAPH_SEPARATOR.join(paras))
    questions = []
    for q in rows:
        base = paragraph_offsets[(q.article_index, q.paragraph_index)]
        spans = tuple((base + s, base + s + len(t)) for t, s in zip(q.answers, q.answer_starts, strict=True))
        questions.append(GoldQuestion(q.id, q.question, q.answers, ids[q.article_index], spans))
    return GoldSet(questions, corpus.articles)


def _title(context: str, limit: int = 80) -> str:
    """A title for an untitled context: its first line, cut at a word near `limit`."""
    first = next((line.strip() for line in context.split("\n") if line.strip()), "untitled")
    return first if len(first) <= limit else first[:limit].rsplit(" ", 1)[0] + " …"


def _load_mrqa_gold(path: Path) -> GoldSet:
    try:
        contexts = load_mrqa(path)
    except MrqaFormatError as exc:
        raise GoldFormatError(str(exc)) from exc
    corpus = _Corpus("mrqa", contexts[0].dataset if contexts else "MRQA")
    questions = []
    for c in contexts:
        article_id = corpus.add(_title(c.context), c.context)
        for q in c.questions:
            answers = q.answers or tuple(dict.fromkeys(c.context[s:e] for s, e in q.spans))
            questions.append(GoldQuestion(q.id, q.question, answers, article_id, q.spans))
    if not questions:
        raise GoldFormatError(f"{path}: no questions in the file")
    return GoldSet(questions, corpus.articles)


def _load_jsonl_gold(path: Path) -> GoldSet:
    questions = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise GoldFormatError(f"{path}: not UTF-8 text") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldFormatError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise GoldFormatError(f"{path}:{n}: expected a JSON object")
        question = obj.get("question")
        if not isinstance(question, str) or not question.strip():
            raise GoldFormatError(f"{path}:{n}: 'question' must be a non-empty string")
        answers = obj.get("answers")
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise GoldFormatError(f"{path}:{n}: 'answers' must be a list of strings ([] = not answerable)")
        article_id = obj.get("article_id")
        questions.append(
            GoldQuestion(
                str(obj.get("id", f"line-{n}")),
                question,
                tuple(answers),
                article_id if isinstance(article_id, str) else None,
                history=_history(obj.get("history", []), f"{path}:{n}"),
                category=str(obj.get("category") or ""),
                tags=_tags(obj, f"{path}:{n}"),
            )
        )
    if not questions:
        raise GoldFormatError(f"{path}: no questions in the file")
    return GoldSet(questions, [])


def _history(turns: object, where: str) -> tuple[Turn, ...]:
    """A conversation's earlier turns: a list of {"question", "answer"?} objects."""
    if not isinstance(turns, list):
        raise GoldFormatError(f"{where}: 'history' must be a list of {{question, answer}} objects")
    history = []
    for turn in turns:
        if not isinstance(turn, dict) or not isinstance(turn.get("question"), str):
            raise GoldFormatError(f"{where}: each 'history' turn needs a 'question' string")
        answer = turn.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise GoldFormatError(f"{where}: a 'history' turn's 'answer' must be a string")
        history.append(Turn(turn["question"], answer))
    return tuple(history)


def _tags(obj: dict, where: str) -> tuple[str, ...]:
    """The question's tags; "paraphrased": true counts as the tag "paraphrased"."""
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise GoldFormatError(f"{where}: 'tags' must be a list of strings")
    return tuple(dict.fromkeys(tags + (["paraphrased"] if obj.get("paraphrased") is True else [])))
