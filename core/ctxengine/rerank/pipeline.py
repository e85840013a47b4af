"""Chaining strategies, and resolving a re-ranker from a name (the engine's config path)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from .._validation import check_choice
from ..embeddings import Embedder
from ..errors import InvalidInputError, InvalidTypeError, ModelNotFoundError
from ..types import ScoredDocument
from .base import BaseReranker, Reranker
from .cross_encoder import CrossEncoderReranker
from .mmr import MMRReranker
from .passage import PassageReranker
from .tags import TagReranker

#: What ``get_reranker(None)`` builds. "tags" boosts documents whose tags the query names (a
#: no-op on untagged documents), "dedup" drops near-duplicates without reordering. Until the
#: first stage scored sentence windows (``HybridRetriever(passage_window=2)``) the chain also
#: held "passage-gain", which then raised nDCG@10 by +0.009 on SciFact and +0.007 on LoCoMo;
#: over a windowed first stage it lowered it (SciFact 0.748 -> 0.739, LoCoMo 0.501 -> 0.489:
#: the same signal counted twice), so it is opt-in, like MMR proper (lambda 0.7), which
#: lowered nDCG@10 on both sets.
DEFAULT_RERANKER: tuple[str, ...] = ("tags", "dedup")


class RerankPipeline(BaseReranker):
    """Run ``stages`` in order, each re-ranking the previous one's output.

    Only the last stage is cut to ``k``, so an early stage cannot drop a document that a
    later, better-informed stage would have kept. An empty pipeline keeps the incoming
    order (sorted by score) and scores: it is what ``"none"`` means.
    """

    name = "pipeline"

    def __init__(self, stages: Sequence[Reranker]) -> None:
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
            raise InvalidTypeError(
                f"stages must be a sequence of re-rankers, got {type(stages).__name__}"
            )
        for stage in stages:
            if not callable(getattr(stage, "rerank", None)):
                raise InvalidTypeError(
                    f"every stage needs a rerank(query, candidates, k) method; got {type(stage).__name__}"
                )
        self.stages: tuple[Reranker, ...] = tuple(stages)

    def _order(
        self, query: str, items: list[ScoredDocument], k: int | None
    ) -> list[ScoredDocument]:
        if not self.stages:
            order = sorted(range(len(items)), key=lambda i: -items[i].score)
            if k is not None:
                order = order[:k]
            return [replace(items[i], stage_scores=dict(items[i].stage_scores)) for i in order]
        for position, stage in enumerate(self.stages):
            last = position == len(self.stages) - 1
            items = stage.rerank(query, items, k if last else None)
        return items

    def __repr__(self) -> str:
        return f"RerankPipeline({list(self.stages)!r})"


def _named(reranker: BaseReranker, name: str) -> BaseReranker:
    # A configured variant records its scores under its registry name, so the stage a
    # packet shows is the name the chain was built from.
    reranker.name = name
    return reranker


def _cross_encoder(embedder: Embedder | None, argument: str) -> Reranker:
    if not argument:
        raise ModelNotFoundError(
            "'cross-encoder' needs a local model directory: use 'cross-encoder:/path/to/model' "
            "or pass CrossEncoderReranker(path) (no PyPI package ships cross-encoder weights)"
        )
    return CrossEncoderReranker(argument)


#: name -> factory(embedder, argument): every built-in strategy, by the stage name it records.
#: Only ``cross-encoder`` takes an argument (``"cross-encoder:/path/to/model"``).
RERANKERS: dict[str, Callable[[Embedder | None, str], Reranker]] = {
    "none": lambda embedder, _: RerankPipeline([]),
    "tags": lambda embedder, _: TagReranker(),
    "passage": lambda embedder, _: PassageReranker(embedder),
    "passage-gain": lambda embedder, _: _named(
        PassageReranker(embedder, mode="gain", weight=1.0), "passage-gain"
    ),
    "mmr": lambda embedder, _: MMRReranker(embedder),
    "dedup": lambda embedder, _: _named(MMRReranker(embedder, lambda_=1.0), "dedup"),
    "cross-encoder": _cross_encoder,
}
NAMES: tuple[str, ...] = tuple(RERANKERS)


def get_reranker(
    spec: str | Reranker | Sequence[str | Reranker] | None = None,
    *,
    embedder: Embedder | None = None,
) -> Reranker:
    """Resolve a re-ranker from a name, an instance, or a list of either (chained in order).

    Names are the keys of :data:`RERANKERS`; each strategy records its scores under its
    name. ``None`` gives the default (:data:`DEFAULT_RERANKER`). ``embedder`` is shared by
    the strategies that embed (``passage``, ``mmr``, ``dedup``); ``None`` means the
    process-wide default.
    """
    if spec is None:
        return get_reranker(DEFAULT_RERANKER, embedder=embedder)
    if isinstance(spec, str):
        head, sep, argument = spec.strip().partition(":")
        name = head.strip().lower().replace("_", "-")
        check_choice(name, "reranker", NAMES)
        if sep and name != "cross-encoder":
            raise InvalidInputError(f"re-ranker {name!r} takes no argument (got {spec!r})")
        return RERANKERS[name](embedder, argument.strip())
    if isinstance(spec, Sequence) and not isinstance(spec, bytes):
        stages = []
        for item in spec:
            if item is None:
                raise InvalidInputError("a re-ranker list cannot contain None")
            stages.append(get_reranker(item, embedder=embedder))
        return RerankPipeline(stages)
    if callable(getattr(spec, "rerank", None)):
        return spec
    raise InvalidTypeError(
        f"reranker must be a name, a Reranker or a list of them, got {type(spec).__name__}"
    )


__all__ = ["DEFAULT_RERANKER", "NAMES", "RERANKERS", "RerankPipeline", "get_reranker"]
