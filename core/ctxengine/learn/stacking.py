"""The learned ranker stacked over a query adapter, cross-fitted.

A :class:`~ctxengine.learn.QueryAdapter` sharpens the dense signal; a
:class:`~ctxengine.learn.LearnedRanker` weighs the pipeline's signals. Stacked, the ranker
reads the adapted dense score (the retriever's, with the adapter seated) *and* the
encoder's own (``DocumentFeatures(stacked=True)``), so it learns how far to trust the
adapter. Trained naively, on an adapter's scores of its own training queries, the ranker
over-trusts it: those scores are over-confident (0.475 vs 0.546 nDCG@10 on LoCoMo,
``benchmarks/learned_adapter.py``). So :func:`fit_stacked` cross-fits:

1. the examples are split into ``folds`` by a seeded permutation of the queries; with
   several sources (one index each), whole sources are held out instead (folds of
   sources, as scikit-learn's ``GroupKFold``), because a model trained on some indexes
   serves others: the rows must come from an adapter that never saw their index either
   (on LoCoMo, holding out queries of seen conversations gave 0.556 nDCG@10, holding out
   whole conversations 0.560);
2. for each fold an adapter is trained on the other folds, and the fold's ranker rows are
   computed with that adapter seated: every row is an adapted score of a query the
   adapter never saw, the situation the ranker meets when serving;
3. the ranker is trained on all rows, and the adapter that is seated with it is trained on
   every example.

That is ``folds + 1`` adapter fits (seconds each) and one pass of featurization over the
examples. :meth:`ContextEngine.fit(examples, adapter=True) <ctxengine.ContextEngine.fit>`
calls it on the engine's own index; several ``(retriever, examples)`` sources (one index
each, e.g. one per conversation) train one model over all of them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..errors import ConfigurationError, InvalidInputError, InvalidTypeError
from .adapter import QueryAdapter
from .adapting import Pairs, document_pairs, fit_adapter
from .features import DocumentFeatures
from .model import LinearScorer
from .training import RankingExample, ranking_groups

Source = tuple[Any, Sequence[RankingExample]]  # a retriever and the examples asked of it


@dataclass
class StackedModel:
    """What :func:`fit_stacked` trained: the ranker's ``model`` (over stacked document
    features), the ``adapter`` to seat in the retriever under it, and a ``report``."""

    model: LinearScorer
    adapter: QueryAdapter
    report: dict[str, Any] = field(default_factory=dict)


def with_adapter(retriever: Any, adapter: QueryAdapter | None) -> Any:
    """A view of ``retriever`` with ``adapter`` in its ``query_adapter`` seat (None: the
    encoder as it is). The view shares the index (a shallow copy): training never
    touches the seat of a retriever that may be serving meanwhile."""
    if not hasattr(retriever, "query_adapter"):
        raise ConfigurationError(
            f"stacking needs a retriever with a query adapter seat (a HybridRetriever), "
            f"got {type(retriever).__name__}"
        )
    view = copy.copy(retriever)
    view.query_adapter = adapter
    return view


def _pick(pairs: Pairs, rows: Sequence[int]) -> Pairs:
    queries, positives, negatives = pairs
    return queries[list(rows)], [positives[i] for i in rows], [negatives[i] for i in rows]


def _join(parts: Sequence[Pairs]) -> Pairs:
    kept = [p for p in parts if len(p[0])]
    return (
        np.vstack([p[0] for p in kept]),
        [x for p in kept for x in p[1]],
        [x for p in kept for x in p[2]],
    )


def _folds(owner: Sequence[int], folds: int, random_state: int) -> np.ndarray:
    """Each example's fold: a seeded permutation of the queries dealt into ``folds``, or of
    the sources when the examples come from several (see the module docstring)."""
    rng = np.random.default_rng(random_state)
    sources = sorted(set(owner))
    if len(sources) > 1:
        fold_of_source = np.empty(max(sources) + 1, dtype=np.intp)
        fold_of_source[rng.permutation(sources)] = np.arange(len(sources)) % folds
        return fold_of_source[np.asarray(owner)]
    fold_of = np.empty(len(owner), dtype=np.intp)
    fold_of[rng.permutation(len(owner))] = np.arange(len(owner)) % min(folds, len(owner))
    return fold_of


def fit_stacked(
    sources: Sequence[Source],
    *,
    candidates: int = 30,
    folds: int = 5,
    adapter: QueryAdapter | None = None,
    model: LinearScorer | None = None,
    embedder: Any | None = None,
    features: Mapping[str, Any] | None = None,
    random_state: int = 0,
) -> StackedModel:
    """Train the stacked ranker and its adapter, cross-fitted (see the module docstring).

    ``sources``: ``(retriever, examples)`` pairs, each retriever a
    :class:`~ctxengine.retrieval.HybridRetriever` (its seated adapter, if any, is ignored:
    pairs and rows come from views with the fold's adapter). ``candidates``: the first-stage
    depth the ranker re-ranks (the engine's ``candidates``). ``folds`` (>= 2): cross-fitting
    folds over the queries (over the sources when there are several), fewer when there
    are fewer examples (sources). ``adapter``: an untrained
    :class:`QueryAdapter` whose settings every adapter is trained with (default
    ``QueryAdapter()``). ``model``: the :class:`LinearScorer` to fit (default its
    defaults). ``embedder``: embeds the passage features (None: the process-wide default).
    ``features``: more :class:`DocumentFeatures` options (``passage``, ``tfidf``,
    ``window``). ``random_state`` seeds the folds: with the adapter's and the model's own
    seeds, training is deterministic.

    Examples whose relevant ids are not in their retriever are left out; with fewer than
    two left, :class:`~ctxengine.errors.InvalidInputError` and nothing is trained.
    """
    check_positive_int(candidates, "candidates")
    folds = check_positive_int(folds, "folds")
    if folds < 2:
        raise InvalidInputError("folds must be at least 2: cross-fitting holds one out")
    check_positive_int(random_state, "random_state", allow_zero=True)
    template = adapter if adapter is not None else QueryAdapter()
    if not isinstance(template, QueryAdapter):
        raise InvalidTypeError(f"adapter must be a QueryAdapter, got {type(adapter).__name__}")
    options = dict(features or {})
    if "stacked" in options or "retriever" in options:
        raise InvalidInputError("features options cannot set retriever or stacked")
    started = time.perf_counter()
    plain = [with_adapter(retriever, None) for retriever, _ in sources]
    kept = [
        [e for e in examples if any(g > 0 and i in retriever for i, g in e.relevant.items())]
        for (_, examples), retriever in zip(sources, plain)
    ]
    owner = [s for s, items in enumerate(kept) for _ in items]  # example -> its source
    total = len(owner)
    if total < 2:
        raise InvalidInputError(
            "stacking needs at least 2 examples with a relevant id among the indexed documents"
        )
    # one (query, positives, hard negatives) entry per kept example, in the order of owner
    pairs = _join([document_pairs(items, r) for items, r in zip(kept, plain)])
    fold_of = _folds(owner, folds, random_state)
    folds = int(fold_of.max()) + 1
    flat = [e for items in kept for e in items]
    featurizers = [DocumentFeatures(r, embedder=embedder, stacked=True, **options) for r in plain]
    groups = []
    for fold in range(folds):
        outside = np.flatnonzero(fold_of != fold)
        fold_adapter = fit_adapter(
            _pick(pairs, outside.tolist()), QueryAdapter(**template.get_params())
        )
        views = {}
        for i in np.flatnonzero(fold_of == fold):
            source = owner[i]
            if source not in views:
                views[source] = with_adapter(plain[source], fold_adapter)
            featurizers[source].retriever = views[source]
            groups += ranking_groups([flat[i]], views[source], featurizers[source], candidates)
    final = fit_adapter(pairs, QueryAdapter(**template.get_params()))
    fitted = (model or LinearScorer()).fit(groups, featurizers[0])
    report = {
        "examples": total,
        "folds": folds,
        "random_state": random_state,
        "adapter": dict(final.trained),
        "seconds": round(time.perf_counter() - started, 3),
    }
    fitted.trained["stacked"] = f"cross-fitted over {folds} folds of {total} queries"
    return StackedModel(fitted, final, report)


__all__ = ["Source", "StackedModel", "fit_stacked", "with_adapter"]
