"""The ContextPacket: what the model will see, and why."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .types import ScoredDocument, ScoredTurn

#: Narrowest :meth:`ContextPacket.explain` report: the tables' columns need this much.
MIN_EXPLAIN_WIDTH = 40

if TYPE_CHECKING:
    from .budget import Rendered, TokenBudget


@dataclass
class ContextPacket:
    """The result of :meth:`ContextEngine.build`.

    ``text`` is the whole prompt; ``tokens_used`` is its real token count (always
    ``<= token_budget``). ``usage`` gives each slot's marginal tokens in the order the
    slots appear in ``text``, so the values add up to ``tokens_used`` exactly.
    """

    query: str
    session_id: str
    text: str
    messages: list[dict[str, str]]
    token_budget: int
    tokens_used: int
    usage: dict[str, int]
    documents: list[ScoredDocument]
    memory_turns: list[ScoredTurn]
    timings: dict[str, float]
    candidates: list[ScoredDocument] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    token_counter: str = ""
    answer_reserve: int = 0  # tokens kept free for the reply (not part of ``text``)
    # item id -> feature -> its share of the learned score (only when a learned scorer chose)
    contributions: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_request(
        cls,
        request: Rendered,
        *,
        query: str,
        session_id: str,
        budget: TokenBudget,
        timings: dict[str, float],
        candidates: list[ScoredDocument],
    ) -> ContextPacket:
        """The packet of a finished ledger (:meth:`BudgetLedger.finish`)."""
        items = [(d.id, d.contributions) for d in request.documents]
        items += [(t.turn.id, t.contributions) for t in request.turns]
        return cls(
            query=query,
            session_id=session_id,
            text=request.text,
            messages=request.messages,
            token_budget=budget.total,
            tokens_used=request.tokens,
            usage=request.usage,
            documents=request.documents,
            memory_turns=request.turns,
            timings=timings,
            candidates=candidates,
            notes=request.notes,
            token_counter=budget.token_counter.name,
            answer_reserve=budget.reserve_for_answer,
            contributions={key: dict(parts) for key, parts in items if parts},
        )

    @property
    def tokens_free(self) -> int:
        """Budget left unused (after the answer reserve)."""
        return self.token_budget - self.answer_reserve - self.tokens_used

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (documents and turns by id, scores and tokens)."""
        return {
            "query": self.query,
            "session_id": self.session_id,
            "text": self.text,
            "messages": self.messages,
            "token_budget": self.token_budget,
            "tokens_used": self.tokens_used,
            "usage": dict(self.usage),
            "documents": [
                {
                    "id": doc.id,
                    "score": doc.score,
                    "stage_scores": dict(doc.stage_scores),
                    "compressed": doc.compressed,
                    "tokens": doc.tokens,
                    "kept_sentences": [span.sentence_index for span in doc.kept or []],
                    "text": doc.text,
                }
                for doc in self.documents
            ],
            "memory_turns": [
                {
                    "id": turn.turn.id,
                    "role": turn.role,
                    "content": turn.content,
                    "effective": turn.effective,
                    "components": dict(turn.components),
                    "tokens": turn.tokens,
                }
                for turn in self.memory_turns
            ],
            "timings": dict(self.timings),
            "notes": list(self.notes),
            "contributions": {key: dict(parts) for key, parts in self.contributions.items()},
        }

    def explain(self, *, width: int = 110) -> str:
        """A readable report: budget per slot, chosen documents, memory turns, timings,
        ``width`` characters wide (at least :data:`MIN_EXPLAIN_WIDTH`: narrower, rich
        returned an empty or one-letter-per-line report)."""
        from rich.console import Console

        from ._validation import check_positive_int
        from .errors import InvalidInputError

        if check_positive_int(width, "width") < MIN_EXPLAIN_WIDTH:
            raise InvalidInputError(f"width must be >= {MIN_EXPLAIN_WIDTH}, got {width}")

        buffer = io.StringIO()
        # Display is literal: no console markup ("[/i]" raised MarkupError, "[emb-003]"
        # vanished), no ":emoji:" codes, no highlighting of the user's text.
        console = Console(
            file=buffer,
            width=width,
            force_terminal=False,
            force_jupyter=False,
            color_system=None,
            markup=False,
            emoji=False,
            highlight=False,
        )
        for renderable in self.renderables():
            console.print(renderable)
        return buffer.getvalue()

    def renderables(self) -> list[Any]:
        """The rich tables :meth:`explain` prints (the CLI prints them in colour). Every
        cell is a :class:`rich.text.Text`, so any console shows the text literally, and
        characters a terminal acts on (escape sequences, bidi controls) are shown as their
        escapes (:func:`ctxengine.display.visible`)."""
        from rich.table import Table
        from rich.text import Text

        from .display import visible

        def row(table: Any, *cells: str, style: str | None = None) -> None:
            table.add_row(*(Text(visible(cell)) for cell in cells), style=style)

        budget = Table(
            title=Text(visible(f"Token budget ({self.token_counter})")), title_justify="left"
        )
        budget.add_column("slot")
        budget.add_column("tokens", justify="right")
        budget.add_column("share", justify="right")
        for slot, tokens in self.usage.items():
            row(budget, slot, str(tokens), f"{tokens / self.token_budget:.0%}")
        if self.answer_reserve:
            row(
                budget,
                "answer_reserve",
                str(self.answer_reserve),
                f"{self.answer_reserve / self.token_budget:.0%}",
            )
        row(budget, "free", str(self.tokens_free), f"{self.tokens_free / self.token_budget:.0%}")
        row(budget, "total", f"{self.tokens_used} / {self.token_budget}", "", style="bold")

        documents = Table(title="Documents (best first)", title_justify="left")
        for column in ("#", "id", "score", "stages", "kept", "tokens"):
            documents.add_column(
                column, justify="right" if column in ("#", "score", "tokens") else "left"
            )
        for rank, doc in enumerate(self.documents, 1):
            stages = ", ".join(
                f"{name}={value:.3g}" for name, value in _stage_items(doc.stage_scores)
            )
            if doc.kept is None:
                kept = "whole"
            else:
                kept = "sentences " + ",".join(str(s.sentence_index) for s in doc.kept)
            row(
                documents,
                str(rank),
                doc.id,
                f"{doc.score:.3f}",
                stages,
                kept,
                str(doc.tokens or ""),
            )

        memory = Table(title="Memory turns (chronological)", title_justify="left")
        for column in ("role", "effective", "components", "content"):
            memory.add_column(column)
        for turn in self.memory_turns:
            parts = ", ".join(f"{k}={v:.3g}" for k, v in turn.components.items())
            content = turn.content if len(turn.content) <= 60 else turn.content[:57] + "..."
            row(memory, turn.role, f"{turn.effective:.3f}", parts, content)

        timings = Table(title="Timings", title_justify="left")
        timings.add_column("stage")
        timings.add_column("ms", justify="right")
        for stage, seconds in self.timings.items():
            row(timings, stage, f"{seconds * 1000:.2f}")
        out: list[Any] = [budget, documents, memory, timings]
        if self.contributions:
            out.insert(3, self._contribution_table(Table))
        if self.notes:
            out.extend(Text(visible(f"note: {note}")) for note in self.notes)
        return out

    def _contribution_table(self, table_class: Any, top: int = 5) -> Any:
        """Per chosen item, the features that moved its learned score most (signed: how
        far the feature was from its training mean, times its weight)."""
        from rich.text import Text

        from .display import visible

        table = table_class(
            title="Learned scores: largest feature contributions", title_justify="left"
        )
        for column in ("item", "score", "contributions"):
            table.add_column(column)
        items = [
            (f"doc {d.id}", d.stage_scores.get("learned", d.score), d.id) for d in self.documents
        ]
        items += [
            (f"turn {t.role}: {t.content[:24]}", t.effective, t.turn.id) for t in self.memory_turns
        ]
        for label, score, key in items:
            parts = self.contributions.get(key)
            if parts:
                largest = sorted(parts.items(), key=lambda kv: -abs(kv[1]))[:top]
                cells = (label, f"{score:.3f}", ", ".join(f"{n}={v:+.2f}" for n, v in largest))
                table.add_row(*(Text(visible(cell)) for cell in cells))
        return table

    def __repr__(self) -> str:
        return (
            f"ContextPacket(tokens_used={self.tokens_used}/{self.token_budget}, "
            f"documents={[d.id for d in self.documents]}, memory_turns={len(self.memory_turns)})"
        )


def _stage_items(stages: Mapping[str, float]) -> list[tuple[str, float]]:
    return [(name, value) for name, value in stages.items() if isinstance(value, (int, float))]


__all__ = ["ContextPacket"]
