"""Context modeling: small scorers trained on the application's own data.

The hand-set rules (hybrid alpha 0.65, re-rank blend 0.68/0.32, decay rates) are
defaults; a :class:`LinearScorer` trained on labelled queries or logged feedback replaces
them for document ranking (:class:`LearnedRanker`) and for history-turn selection
(:class:`LearnedMemory`). Features come from scores the pipeline already computes
(:mod:`ctxengine.learn.features`); models are saved as JSON, never pickled.
A :class:`QueryAdapter` learns a map on query vectors for the dense signal (documents,
their sentence windows and memory turns keep their vectors); an :class:`OnlineLearner`
refits as feedback arrives and installs a refit only when it wins on held-out feedback
(:class:`SwitchRule`). ``engine.fit(examples, adapter=True)`` trains both and stacks the
ranker over the adapter, cross-fitted (:func:`fit_stacked`).
:func:`fine_tune_encoder` fine-tunes the encoder itself (:class:`EncoderFineTuner`),
re-embeds the index as a new version and switches only when it wins on held-out queries.

    engine.fit([RankingExample("query", ["doc-1"]), ...])   # or MemoryExample(...)
    engine.record_feedback("query", "doc-1", useful=True)    # log now, train later
"""

from __future__ import annotations

from .adapter import QueryAdapter
from .adapting import document_pairs, fit_adapter, memory_pairs
from .features import (
    DOCUMENT_FEATURE_VERSION,
    MEMORY_FEATURE_VERSION,
    DocumentFeatures,
    MemoryFeatures,
)
from .finetune import EncoderFineTuner, fine_tune_encoder
from .fitting import FittedScorers, fit_engine_scorers
from .model import LinearScorer
from .online import OnlineLearner
from .scorers import LearnedMemory, LearnedRanker
from .stacking import StackedModel, fit_stacked
from .switching import SwitchDecision, SwitchRule, first_stage_ndcg
from .training import (
    FeedbackLog,
    MemoryExample,
    RankingExample,
    coerce_examples,
    fit_memory,
    fit_ranker,
)

__all__ = [
    "DOCUMENT_FEATURE_VERSION",
    "MEMORY_FEATURE_VERSION",
    "DocumentFeatures",
    "EncoderFineTuner",
    "FeedbackLog",
    "FittedScorers",
    "LearnedMemory",
    "LearnedRanker",
    "LinearScorer",
    "MemoryExample",
    "MemoryFeatures",
    "OnlineLearner",
    "QueryAdapter",
    "RankingExample",
    "StackedModel",
    "SwitchDecision",
    "SwitchRule",
    "coerce_examples",
    "document_pairs",
    "fine_tune_encoder",
    "first_stage_ndcg",
    "fit_adapter",
    "fit_engine_scorers",
    "fit_memory",
    "fit_ranker",
    "fit_stacked",
    "memory_pairs",
]
