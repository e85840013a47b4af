"""Numbers: every number a caller, a clock, a first stage or a file hands the engine is
checked, and a bad one is a typed error from ctxengine.errors, never an OverflowError,
TypeError or a crash inside numpy."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_support import scaled_examples

from ctxengine._validation import check_finite
from ctxengine.embeddings import HashingEmbedder
from ctxengine.engine import ContextEngine
from ctxengine.errors import CtxEngineError, InvalidInputError, InvalidTypeError
from ctxengine.scoring import minmax
from ctxengine.types import Document, ScoredDocument

DOCS = [
    Document(id="a", text="Cats sleep in the sun."),
    Document(id="b", text="Dogs chase balls in parks."),
]
HUGE = 10**400


def _engine(**kwargs) -> ContextEngine:
    return ContextEngine.from_documents(DOCS, embedder=HashingEmbedder(64), **kwargs)


@pytest.mark.parametrize("value", [HUGE, -HUGE, float("inf"), float("nan"), 2**1024])
def test_check_finite_types_every_non_finite_number(value):
    with pytest.raises(InvalidInputError):
        check_finite(value, "x")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda e: e.remember("user", "hi there", importance=HUGE), id="importance"),
        pytest.param(lambda e: e.remember("user", "hi there", timestamp=HUGE), id="timestamp"),
        pytest.param(
            lambda e: e.remember("user", "hi there", timestamp=-HUGE), id="negative-timestamp"
        ),
        pytest.param(lambda e: e.build("cats", now=HUGE), id="now"),
        pytest.param(
            lambda e: e.remember("user", "hi there", importance=float("nan")), id="nan-importance"
        ),
    ],
)
def test_huge_numbers_in_calls_are_typed_errors_and_store_nothing(call):
    engine = _engine()
    with pytest.raises(CtxEngineError):
        call(engine)
    assert engine.memory.turns("default") == []


@pytest.mark.parametrize(
    "options",
    [
        {"token_budget": HUGE},
        {"token_budget": 0},
        {"token_budget": -5},
        {"token_budget": 2.5},
        {"k": HUGE},
        {"candidates": HUGE},
        {"k": 0},
        {"candidates": -1},
        {"token_budget": float("inf")},
    ],
    ids=str,
)
def test_engine_numbers_are_checked_at_construction(options):
    with pytest.raises(CtxEngineError):
        _engine(**options).build("cats")


@pytest.mark.parametrize("value", ["now", None, float("nan"), float("inf"), HUGE, [1.0], b"1"])
def test_a_clock_returning_a_non_number_is_a_typed_error(value):
    engine = _engine(clock=lambda: value)
    with pytest.raises(CtxEngineError):
        engine.remember("user", "hello there")
    with pytest.raises(CtxEngineError):
        engine.build("cats")


@pytest.mark.parametrize("score", ["0.5", None, [1], b"1", object()], ids=repr)
def test_a_first_stage_with_non_numeric_scores_is_a_typed_error(score):
    class Stage:
        def retrieve(self, query, k):
            return [ScoredDocument(DOCS[0], score), ScoredDocument(DOCS[1], 1.0)]

    for rerank in (None, "tags"):
        with pytest.raises(InvalidTypeError, match="score"):
            ContextEngine.from_retriever(Stage(), rerank=rerank).build("cats")


@pytest.mark.parametrize("result", [None, "abc", 5, [DOCS[0]], [("a", 1.0)]], ids=repr)
def test_a_first_stage_returning_something_else_is_a_typed_error(result):
    class Stage:
        def retrieve(self, query, k):
            return result

    with pytest.raises(InvalidTypeError):
        ContextEngine.from_retriever(Stage()).build("cats")


@scaled_examples(200, 1.0)
@given(
    st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.none(),
        st.booleans(),
    )
)
def test_hashing_embedder_accepts_exactly_positive_ints(value):
    valid = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 1 <= value <= HashingEmbedder.MAX_DIMENSION
    )
    if valid:
        assert HashingEmbedder(value).dimension == value
    else:
        with pytest.raises(CtxEngineError):
            HashingEmbedder(value)


@scaled_examples(200, 1.0)
@given(st.one_of(st.integers(), st.floats(), st.text(max_size=3), st.none()))
def test_check_finite_either_returns_a_finite_float_or_raises_a_typed_error(value):
    try:
        out = check_finite(value, "x")
    except CtxEngineError:
        return
    assert isinstance(out, float) and math.isfinite(out)


# --- non-finite and extreme scores keep the others' order ------------------------------------


RANKED = [
    Document(id=f"r{i}", text=text)
    for i, text in enumerate(
        [
            "cats sleep most of the day",
            "rivers carry sediment to the sea",
            "compilers translate source code",
            "volcanoes erupt molten rock",
            "bread rises because of yeast",
            "glaciers carve deep valleys",
        ]
    )
]


@pytest.mark.parametrize(
    "odd",
    [float("nan"), float("inf"), float("-inf"), 1e308, -1e308],
    ids=["nan", "inf", "-inf", "1e308", "-1e308"],
)
def test_one_non_finite_or_extreme_score_keeps_the_first_stages_order(odd):
    """A plug-in first stage's NaN or infinity is "no information" about that one
    document: the others keep their order (one NaN made every score 1.0, and a pair of
    scores ``±1e308`` overflowed the scaling into NaN, which lost the whole ranking)."""
    scores = [0.9, 0.7, 0.5, 0.3, 0.1]
    if odd == -1e308:
        scores = [1e308, 0.7, 0.5, 0.3, 0.1]

    class Stage:
        def retrieve(self, query, k):
            found = [ScoredDocument(d, s) for d, s in zip(RANKED, scores)]
            return [*found, ScoredDocument(RANKED[5], odd)][:k]

    packet = ContextEngine.from_retriever(Stage(), k=6).build("cats")  # the default re-rank
    order = [d.id for d in packet.documents if d.id != "r5"]
    assert order == ["r0", "r1", "r2", "r3", "r4"]
    assert all(math.isfinite(d.score) for d in packet.documents)
    if not math.isfinite(odd):  # (a finite extreme rightly squeezes the others together)
        assert len({round(d.score, 9) for d in packet.documents if d.id != "r5"}) == 5


def test_minmax_reads_non_finite_values_as_ends_and_keeps_the_finite_scale():
    nan, inf = float("nan"), float("inf")
    assert minmax([2.0, nan, 4.0, inf, -inf, 3.0]).tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.5]
    assert minmax([1e308, -1e308, 0.0]).tolist() == [1.0, 0.0, 0.5]
    assert minmax([nan, nan]).tolist() == [0.0, 0.0]  # nothing finite: the constant rule
    assert minmax([2.0, 3.0], reference=[nan, 1.0, 5.0]).tolist() == [0.25, 0.5]


@pytest.mark.parametrize("kind", ["int64", "float32", "float64"])
def test_numpy_timestamps_are_read_as_seconds(kind):
    # what a DataFrame column hands over: stored at the same second as the Python number
    import numpy as np

    engine = ContextEngine.from_documents(["owls hunt at night"], retrieval="keyword")
    engine.remember("user", "owls again", session_id="s", timestamp=getattr(np, kind)(1.5e9))
    engine.remember("user", "owls twice", session_id="s", timestamp=1.5e9)
    first, second = engine.memory.turns("s")  # type: ignore[union-attr]
    assert first.timestamp == second.timestamp == 1.5e9
    with pytest.raises(InvalidTypeError):
        engine.remember("user", "a flag is not a time", session_id="s", timestamp=np.bool_(True))
    assert len(engine.memory.turns("s")) == 2  # type: ignore[union-attr]
