"""Rendering a filled ledger: sections in a fixed order, counted again, trimmed to fit.

The slots are budgeted one by one, but BPE token counts are not additive across joins,
so the final text is always counted once more and trimmed (documents first, then the
weakest history turn, then the question) until it fits. ``usage`` gives each slot's
*marginal* tokens in text order, so its values add up to the total exactly. The chat
messages carry the same rendered content as the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import formatting as fmt
from ..tokens import TokenCounter, count_joined, count_prefix, inner_spaces, joins_add_up
from ..types import KeptSpan, ScoredDocument, ScoredTurn, chat_role


@dataclass
class Rendered:
    """A request's text, its chat messages, and what it holds after the final count."""

    text: str
    tokens: int
    usage: dict[str, int]
    documents: list[ScoredDocument]
    turns: list[ScoredTurn]
    question: str | None
    messages: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sections(
    system_prompt: str,
    turns: list[ScoredTurn],
    documents: list[ScoredDocument],
    question: str | None,
) -> list[tuple[str, str]]:
    """``(slot, text)`` pairs in prompt order: system, history, context, question."""
    out: list[tuple[str, str]] = []
    if system_prompt:
        out.append(("system_prompt", system_prompt))
    if turns:
        body = fmt.render_turns([t.turn for t in turns])
        out.append(("history", fmt.wrap(fmt.HISTORY_OPEN, body, fmt.HISTORY_CLOSE)))
    if documents:
        body = fmt.DOCUMENT_SEPARATOR.join(fmt.render_document(doc) for doc in documents)
        out.append(("retrieved_docs", fmt.wrap(fmt.CONTEXT_OPEN, body, fmt.CONTEXT_CLOSE)))
    if question:
        out.append(("query", fmt.wrap(fmt.QUERY_OPEN, question, fmt.QUERY_CLOSE)))
    return out


def drop_last_piece(documents: list[ScoredDocument]) -> list[ScoredDocument]:
    """Remove the last kept sentence of the last document (the document if it has one)."""
    last = documents[-1]
    spans = last.kept
    if spans is None:
        spans = [KeptSpan(last.document.text, -1, 0, len(last.document.text))]
    if len(spans) <= 1:
        return documents[:-1]
    return documents[:-1] + [replace(last, kept=list(spans[:-1]))]


def render(
    system_prompt: str,
    turns: list[ScoredTurn],
    documents: list[ScoredDocument],
    question: str | None,
    limit: int,
    counter: TokenCounter,
) -> Rendered:
    """Render, count, and trim until the text has at most ``limit`` tokens."""
    notes: list[str] = []
    while True:
        parts = sections(system_prompt, turns, documents, question)
        text = fmt.SECTION_SEPARATOR.join(body for _, body in parts)
        total, kept = _count_rendered(text, documents, counter)
        if total <= limit:
            break
        if documents:
            documents = drop_last_piece(documents)
        elif turns:
            weakest = min(range(len(turns)), key=lambda i: turns[i].effective)
            turns = turns[:weakest] + turns[weakest + 1 :]
        elif question:
            keep = max(counter.count(question) - (total - limit), 0)
            question = counter.truncate(question, keep) or None
        else:  # only the system prompt is left, and the budget was checked to hold it
            break
        notes.append("trimmed after the final count")
    usage: dict[str, int] = {}
    end, previous = -len(fmt.SECTION_SEPARATOR), 0
    for slot, body in parts:  # each slot's tokens: the count of the text up to its end
        end += len(fmt.SECTION_SEPARATOR) + len(body)
        running = total if end == len(text) else count_prefix(counter, text, end, total)
        usage[slot] = running - previous
        previous = running
    documents = [_with_tokens(doc, tokens) for doc, tokens in zip(documents, kept)]
    # the messages carry the context section as the text has it: rendered once
    context = next((body for slot, body in parts if slot == "retrieved_docs"), None)
    messages = build_messages(system_prompt, turns, documents, question, context=context)
    return Rendered(text, total, usage, documents, turns, question, messages, notes)


def _count_rendered(
    text: str, documents: list[ScoredDocument], counter: TokenCounter
) -> tuple[int, list[int]]:
    """``counter.count(text)`` for the rendered ``text``, and each document's kept text's
    count.

    Where counts add up (:func:`~ctxengine.tokens.joins_add_up`), a kept text split at its
    first and last inner spaces (single spaces between words,
    :func:`~ctxengine.tokens.inner_spaces`) counts as its three parts. The compressor
    counted every kept sentence with its end words, so the middle part is the kept text's
    count less its end words' (remembered), and only what lies between documents
    (sections, headers, the end words where they meet) is encoded.
    """
    kept = [_count_kept(doc, counter) for doc in documents]
    if not joins_add_up(counter):
        return counter.count(text), kept
    # joins add up only for a TiktokenCounter; pieces of a rendered text need no check
    count = counter._count  # type: ignore[attr-defined]
    total, start, position = 0, 0, 0
    for doc, tokens in zip(documents, kept):
        if not doc.kept:
            continue
        body = doc.text
        found = text.find(body, position)
        spaces = inner_spaces(body)
        if found < 0 or spaces is None:
            continue  # escaped (a marker look-alike in it) or one word: counted as it stands
        first, last = spaces
        middle = tokens - count(body[:first]) - count(body[last:])
        total += count(text[start : found + first]) + middle
        start, position = found + last, found + len(body)
    return total + count(text[start:]), kept


def _with_tokens(doc: ScoredDocument, tokens: int) -> ScoredDocument:
    # The compressor's count is usually this one already: a copy only if it is not.
    return doc if doc.tokens == tokens else replace(doc, tokens=tokens)


def _count_kept(doc: ScoredDocument, counter: TokenCounter) -> int:
    """Tokens of ``doc.text``: by its kept spans (counted by the compressor already)."""
    if doc.kept is None:
        return counter.count(doc.document.text)
    return count_joined(counter, [span.text for span in doc.kept])


def build_messages(
    system_prompt: str,
    turns: list[ScoredTurn],
    documents: list[ScoredDocument],
    question: str | None,
    *,
    context: str | None = None,
) -> list[dict[str, str]]:
    """OpenAI-style messages with the same content as the text: system prompt and
    retrieved context in the system message, history as role messages, then the question.

    ``context``: the documents' section as :func:`sections` rendered it (None: rendered
    here from ``documents``)."""
    system_parts = [system_prompt] if system_prompt else []
    if documents:
        if context is None:
            body = fmt.DOCUMENT_SEPARATOR.join(fmt.render_document(doc) for doc in documents)
            context = fmt.wrap(fmt.CONTEXT_OPEN, body, fmt.CONTEXT_CLOSE)
        system_parts.append(context)
    messages: list[dict[str, str]] = []
    if system_parts:
        messages.append({"role": "system", "content": fmt.SECTION_SEPARATOR.join(system_parts)})
    for turn in turns:
        role = chat_role(turn.role)
        content = fmt.escape(turn.content)  # the escaping packet.text applies
        if role == "user" and turn.role.strip().lower() not in ("user", "human"):
            content = fmt.render_turn(turn.role, turn.content)  # keep the speaker's name
        _append(messages, role, content)
    if question:
        _append(messages, "user", question)
    return messages


def _append(messages: list[dict[str, str]], role: str, content: str) -> None:
    # Several providers reject two messages of one role in a row: merge them instead.
    if messages and messages[-1]["role"] == role and role != "system":
        messages[-1] = {"role": role, "content": messages[-1]["content"] + "\n\n" + content}
    else:
        messages.append({"role": role, "content": content})


__all__ = ["Rendered", "build_messages", "drop_last_piece", "render", "sections"]
