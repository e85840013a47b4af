"""Learning as feedback arrives, without ever installing a worse model.

:class:`OnlineLearner` watches an engine's :class:`~ctxengine.learn.FeedbackLog`. Every
``every`` new records it refits the learned ranker and memory scorer on the examples of
the log *outside* a fixed holdout and compares the candidate with what the engine uses now
(the current learned model, or the hand-set rules when there is none) on the holdout
examples, which neither was trained on. The candidate replaces the current model only if
its :class:`~ctxengine.learn.SwitchRule` says it wins there: a minimum margin of per-query
nDCG and a paired bootstrap over the held-out queries (the same rule decides whether a
fine-tuned encoder is switched in). The holdout is chosen by a hash of the query text
(:meth:`OnlineLearner.split`), so a query stays on the same side as the log grows and the
comparison never sees training data.

Each decision is kept in :attr:`OnlineLearner.history`, and the installed model records
in ``model.trained["chosen"]`` why it was chosen (which the engine's explanation of a
packet can quote).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from .._validation import check_finite, check_positive_int
from ..clock import to_seconds
from ..errors import InvalidTypeError
from ..metrics import ndcg_at_k
from .adapter import QueryAdapter
from .scorers import LearnedRanker
from .stacking import fit_stacked, with_adapter
from .switching import SwitchRule, per_query_ndcg
from .training import (
    MemoryExample,
    RankingExample,
    coerce_examples,
    fit_memory,
    fit_ranker,
    memory_gains,
)


def in_holdout(query: str, share: float, salt: int = 0) -> bool:
    """Whether ``query`` belongs to the holdout (stable: a hash of the text, not its order)."""
    digest = hashlib.sha256(f"{salt}:{query}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _model(seated: Any) -> Any:
    """The trained model of a seat's occupant (a ranker paired with its adapter, or a
    scorer); None for the hand-set rules."""
    occupant = seated[0] if isinstance(seated, tuple) else seated
    model = getattr(occupant, "model", None)
    return model if isinstance(getattr(model, "trained", None), dict) else None


class OnlineLearner:
    """Refit on feedback and swap a model in only when it wins on held-out feedback.

    Parameters
    ----------
    every:
        Refit after this many new feedback records.
    holdout:
        Share of the queries kept for the comparison (never trained on).
    min_examples:
        Training examples (outside the holdout) needed before a refit is tried.
    min_holdout:
        Holdout examples needed for a comparison; with fewer nothing is replaced.
    k:
        Depth of the nDCG the comparison uses.
    rule:
        When a refit replaces the current model (default ``SwitchRule()``: a mean gain of
        at least 0.01 nDCG and 95% paired-bootstrap support over the held-out queries).
    """

    def __init__(
        self,
        *,
        every: int = 20,
        holdout: float = 0.25,
        min_examples: int = 10,
        min_holdout: int = 5,
        k: int = 10,
        rule: SwitchRule | None = None,
    ) -> None:
        self.every = check_positive_int(every, "every")
        self.holdout = check_finite(holdout, "holdout", low=0.0, high=0.9, low_inclusive=False)
        self.min_examples = check_positive_int(min_examples, "min_examples")
        self.min_holdout = check_positive_int(min_holdout, "min_holdout")
        self.k = check_positive_int(k, "k")
        self.rule = SwitchRule() if rule is None else rule
        if not isinstance(self.rule, SwitchRule):
            raise InvalidTypeError(f"rule must be a SwitchRule, got {type(rule).__name__}")
        self.seen = 0
        self.history: list[dict[str, Any]] = []

    def observe(self, engine: Any) -> dict[str, Any] | None:
        """Called after each recorded feedback: refits when ``every`` records have arrived
        since the last attempt; returns the decision, or None when it was not yet time."""
        count = len(engine.feedback)
        if count - self.seen < self.every:
            return None
        self.seen = count
        return self.update(engine, engine.feedback.examples())

    def update(self, engine: Any, examples: Sequence[Any]) -> dict[str, Any]:
        """Refit from ``examples`` and install the winners; returns what was decided per
        model (``"documents"``, ``"memory"``)."""
        ranking, remembered = coerce_examples(examples)
        report: dict[str, Any] = {}
        if ranking and engine.retriever is not None:
            report["documents"] = self._documents(engine, ranking)
        if remembered and engine.memory is not None:
            report["memory"] = self._memory(engine, remembered)
        self.history.append(report)
        return report

    def split(self, examples: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """``(train, holdout)``: the examples whose query is outside / inside the holdout
        share (by a hash of the query text, so a query never changes side)."""
        train = [e for e in examples if not in_holdout(e.query, self.holdout)]
        held = [e for e in examples if in_holdout(e.query, self.holdout)]
        return train, held

    def enough(self, train: Sequence[Any], held: Sequence[Any]) -> bool:
        """Whether there are enough examples on both sides to train and compare."""
        return len(train) >= self.min_examples and len(held) >= self.min_holdout

    def _decide(
        self, current: Any, candidate_fit: Any, score: Any, train: list, held: list
    ) -> tuple[Any, dict]:
        if not self.enough(train, held):
            return current, {
                "replaced": False,
                "reason": f"{len(train)} training / {len(held)} holdout examples: too few",
                "train": len(train),
                "holdout": len(held),
            }
        try:
            candidate = candidate_fit(train)
        except ValueError as exc:  # InvalidInputError: nothing learnable in the training part
            return current, {
                "replaced": False,
                "reason": str(exc),
                "train": len(train),
                "holdout": len(held),
            }
        verdict = self.rule.decide(score(current, held), score(candidate, held))
        old, new = verdict.current, verdict.candidate
        decision = {
            "replaced": verdict.switch,
            "current": round(old, 6),
            "candidate": round(new, 6),
            "support": round(verdict.support, 4),
            "reason": verdict.reason,
            "train": len(train),
            "holdout": len(held),
        }
        if verdict.switch:
            _model(candidate).trained["chosen"] = (
                f"online update: holdout nDCG@{self.k} {new:.3f} > {old:.3f} of the model it replaced "
                f"({len(held)} held-out queries, trained on {len(train)}; {verdict.reason})"
            )
            return candidate, decision
        if _model(current) is not None:  # a learned model stays: its notes say it was re-checked
            _model(current).trained["online"] = (
                f"kept by the last online update (a refit scored {new:.3f} vs {old:.3f} on "
                f"{len(held)} held-out queries: {verdict.reason})"
            )
        return current, decision

    def _documents(self, engine: Any, examples: list[RankingExample]) -> dict[str, Any]:
        """Refit the ranker; a stacked one (over the seated query adapter) is refitted
        stacked, and a candidate is the pair (ranker, adapter), scored with its adapter."""
        train, held = self.split(examples)
        retriever, candidates = engine.retriever, engine.candidates
        seated = getattr(retriever, "query_adapter", None)
        stacked = bool(getattr(getattr(engine.reranker, "features", None), "stacked", False))

        def score(pair: tuple[Any, Any], items: list[RankingExample]) -> list[float]:
            # the seat's occupant: the hand-set re-ranker or a learned one (None: none)
            ranker, adapter = pair
            first = with_adapter(retriever, adapter) if adapter is not seated else retriever
            return per_query_ndcg(first, items, self.k, reranker=ranker, candidates=candidates)

        def fit(items: list[RankingExample]) -> tuple[Any, Any]:
            if not stacked:
                ranker = fit_ranker(
                    items, retriever, candidates=candidates, embedder=engine.embedder
                )
                return ranker, seated
            template = QueryAdapter(**seated.get_params()) if seated is not None else None
            model = fit_stacked(
                [(retriever, items)],
                candidates=candidates,
                adapter=template,
                embedder=engine.embedder,
            )
            ranker = LearnedRanker(model.model, retriever=retriever, embedder=engine.embedder)
            return ranker, model.adapter

        (ranker, adapter), decision = self._decide(
            (engine.reranker, seated), fit, score, train, held
        )
        engine.use_learned(ranker, None, adapter=adapter)
        return decision

    def _memory(self, engine: Any, examples: list[MemoryExample]) -> dict[str, Any]:
        train, held = self.split(examples)
        memory = engine.memory

        def score(learned: Any, items: list[MemoryExample]) -> list[float]:
            # a question without evidence in its session is skipped for both models alike
            values = []
            for example in items:
                at = to_seconds(example.now, memory.clock)
                scored = list(memory.score(example.query, session_id=example.session_id, now=at))
                if not scored or not (memory_gains(scored, dict(example.relevant)) > 0).any():
                    continue
                if learned is not None:  # the ranking the learned memory deploys, ties and all
                    scored, _ = learned.score(
                        memory, example.query, session_id=example.session_id, now=at
                    )
                gains = memory_gains(scored, dict(example.relevant))
                ids = [str(i) for i in range(len(scored))]
                values.append(
                    ndcg_at_k(ids, {ids[i]: float(g) for i, g in enumerate(gains) if g > 0}, self.k)
                )
            return values

        def fit(items: list[MemoryExample]) -> Any:
            return fit_memory(items, memory)

        memory.scorer, decision = self._decide(memory.scorer, fit, score, train, held)
        return decision


__all__ = ["OnlineLearner", "in_holdout"]
