"""What :meth:`ContextEngine.fit <ctxengine.engine.ContextEngine.fit>` trains, in one place:
the document ranker (plain, or stacked over a cross-fitted query adapter,
:mod:`ctxengine.learn.stacking`) and the memory turn scorer."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

from .._validation import check_positive_int
from ..errors import ConfigurationError, InvalidInputError, InvalidTypeError
from .adapter import QueryAdapter
from .model import LinearScorer
from .scorers import LearnedMemory, LearnedRanker
from .stacking import fit_stacked
from .training import coerce_examples, fit_memory, fit_ranker


class FittedScorers(NamedTuple):
    """The models :func:`fit_engine_scorers` trained (``None``: not trained) and its report."""

    ranker: LearnedRanker | None
    scorer: LearnedMemory | None
    adapter: QueryAdapter | None  # the retriever's, under a stacked ranker
    report: dict[str, Any]


def _adapter_template(adapter: Any) -> QueryAdapter | None:
    if adapter is False:
        return None
    if adapter is True:
        return QueryAdapter()
    if isinstance(adapter, QueryAdapter):
        return adapter
    raise InvalidTypeError(
        f"adapter must be a bool or a QueryAdapter, got {type(adapter).__name__}"
    )


def fit_engine_scorers(
    examples: Iterable[Any],
    *,
    retriever: Any | None,
    memory: Any | None,
    candidates: int = 30,
    embedder: Any | None = None,
    adapter: bool | QueryAdapter = False,
    folds: int = 5,
    random_state: int = 0,
    **model_options: Any,
) -> FittedScorers:
    """A ranker from the ranking examples (on ``retriever``'s first ``candidates``) and a
    memory scorer from the memory examples (on ``memory``), each ``None`` when it has no
    examples, and a report ``{"documents"|"memory": {...trained, "examples": n}}``.

    ``adapter``: ``True`` (or an untrained :class:`QueryAdapter` giving its settings) also
    trains a query adapter for the retriever and stacks the ranker over it, cross-fitted
    over ``folds`` folds of the queries seeded by ``random_state``
    (:func:`~ctxengine.learn.stacking.fit_stacked`); ``False`` (default) trains the ranker
    alone on the first stage as it is.

    Examples are checked before anything is trained, so an error leaves nothing half-fitted
    for the caller to install. ``model_options`` go to :class:`LinearScorer`; ``embedder``
    embeds the ranker's passage features (None: the process-wide default).
    """
    template = _adapter_template(adapter)
    check_positive_int(folds, "folds")
    check_positive_int(random_state, "random_state", allow_zero=True)
    ranking, remembered = coerce_examples(examples)
    if not ranking and not remembered:
        raise InvalidInputError("fit() needs at least one example")
    if ranking and retriever is None:
        raise ConfigurationError("document examples need an engine with a retriever")
    if remembered and memory is None:
        raise ConfigurationError("memory examples need an engine with a memory")
    ranker = scorer = trained_adapter = None
    report: dict[str, Any] = {}
    if ranking and template is not None:
        stacked = fit_stacked(
            [(retriever, ranking)],
            candidates=candidates,
            folds=folds,
            adapter=template,
            model=LinearScorer(**model_options),
            embedder=embedder,
            random_state=random_state,
        )
        ranker = LearnedRanker(stacked.model, retriever=retriever, embedder=embedder)
        trained_adapter = stacked.adapter
        report["documents"] = {**stacked.model.trained, "examples": len(ranking)}
        report["stacking"] = stacked.report
    elif ranking:
        if getattr(retriever, "query_adapter", None) is not None:
            warnings.warn(
                "the retriever has a query adapter seated: a ranker trained on its scores of "
                "its own training queries over-trusts it; fit(examples, adapter=True) "
                "retrains it and stacks the ranker over it, cross-fitted",
                UserWarning,
                stacklevel=3,
            )
        model = LinearScorer(**model_options)
        ranker = fit_ranker(
            ranking, retriever, candidates=candidates, model=model, embedder=embedder
        )
        report["documents"] = {**ranker.model.trained, "examples": len(ranking)}
    if remembered:
        scorer = fit_memory(remembered, memory, model=LinearScorer(**model_options))
        report["memory"] = {**scorer.model.trained, "examples": len(remembered)}
    return FittedScorers(ranker, scorer, trained_adapter, report)


__all__ = ["FittedScorers", "fit_engine_scorers"]
