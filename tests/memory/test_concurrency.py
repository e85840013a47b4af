"""One engine shared by many threads and many asyncio tasks: ``build``, ``abuild``,
``remember``, ``retrieve`` and index edits interleaved. No exception, no lost turn, no
packet over budget, no turn of one session in another's packet; with every store.

Turn contents are unique (a random token in each), so dedup has nothing to drop and
every ``remember`` must come back as a stored turn.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import random
import threading
import uuid

import pytest

from ctxengine import ContextEngine, Document, ManualClock
from ctxengine.embeddings import HashingEmbedder
from ctxengine.rerank import MMRReranker, TagReranker

HASHING = HashingEmbedder(256)
BUDGET = 400
TOPICS = [
    "memory decay",
    "token budgets",
    "embeddings",
    "TF-IDF",
    "re-ranking",
    "compression",
    "agents",
    "context windows",
    "BM25",
    "hybrid retrieval",
]
DOCS = [
    Document(
        id=f"doc-{i}",
        text=f"{topic.capitalize()} is discussed here. " * 3
        + f"Document {i} explains {topic} with an example. It also mentions {TOPICS[(i + 3) % 10]}.",
        metadata={"tags": [topic]},
    )
    for i, topic in enumerate(TOPICS * 3)
]


def make_engine(memory_url, **options) -> ContextEngine:
    """Hybrid retrieval, MMR and dense memory relevance on the hashing embedder: every
    shared structure of the real pipeline, without a model's cost."""
    settings = {
        "retrieval": "hybrid",
        "embedder": HASHING,
        "rerank": [TagReranker(), MMRReranker(HASHING)],
        "memory_options": {"embedder": HASHING},
        "memory_url": memory_url,
        "token_budget": BUDGET,
        "system_prompt": "Answer from the context.",
        "clock": ManualClock(),
    }
    settings.update(options)
    return ContextEngine.from_documents(DOCS, **settings)


def unique_turn(rng: random.Random, worker: int, index: int) -> str:
    topic = rng.choice(TOPICS)
    return f"Worker {worker} note {index} token {uuid.uuid4().hex[:10]} asks about {topic}?"


def check(packet, engine, session_id: str, budget: int = BUDGET) -> None:
    assert packet.tokens_used == engine.token_counter.count(packet.text) <= budget
    assert sum(packet.usage.values()) == packet.tokens_used
    assert all(t.turn.session_id == session_id for t in packet.memory_turns)


def worker(engine, index: int, operations: int, sessions: list[str]) -> dict[str, list[str]]:
    """Interleave remember and build (some with touch) on this worker's own session and
    on the shared ones; return the ids of the turns remember stored, per session."""
    rng = random.Random(index)
    stored: dict[str, list[str]] = {}
    own = f"own-{index}"
    for step in range(operations):
        session = own if step % 2 == 0 else rng.choice(sessions)
        action = rng.random()
        if action < 0.5:
            turn = engine.remember(
                rng.choice(["user", "assistant"]), unique_turn(rng, index, step), session_id=session
            )
            assert turn is not None, "unique content must never be dropped"
            stored.setdefault(session, []).append(turn.id)
        elif action < 0.9:
            packet = engine.build(
                f"What about {rng.choice(TOPICS)}?", session_id=session, touch=rng.random() < 0.3
            )
            check(packet, engine, session)
        else:
            assert engine.retrieve(rng.choice(TOPICS), k=3)
    return stored


def assert_nothing_lost(engine, results: list[dict[str, list[str]]]) -> None:
    expected: dict[str, list[str]] = {}
    for stored in results:
        for session, ids in stored.items():
            expected.setdefault(session, []).extend(ids)
    for session, ids in expected.items():
        turns = engine.memory.turns(session)
        assert sorted(t.id for t in turns) == sorted(ids), session
        assert [t.seq for t in turns] == list(range(len(turns))), session
        assert {t.session_id for t in turns} == {session}
    assert len(engine.memory) == sum(len(ids) for ids in expected.values())


def test_threads_share_one_engine(memory_url):
    engine = make_engine(memory_url)
    sessions = ["shared-a", "shared-b"]
    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(worker, engine, i, 40, sessions) for i in range(8)]
        results = [future.result() for future in futures]  # re-raises any worker's exception
    assert_nothing_lost(engine, results)


def test_asyncio_tasks_share_one_engine(memory_url):
    engine = make_engine(memory_url)

    async def task(index: int) -> dict[str, list[str]]:
        rng = random.Random(1000 + index)
        stored: dict[str, list[str]] = {}
        for step in range(12):
            session = f"task-{index % 4}"
            if step % 3 == 0:
                turn = await asyncio.to_thread(
                    engine.remember, "user", unique_turn(rng, index, step), session_id=session
                )
                stored.setdefault(session, []).append(turn.id)
            else:
                packet = await engine.abuild(
                    f"Tell me about {rng.choice(TOPICS)}", session_id=session
                )
                check(packet, engine, session)
        return stored

    async def main() -> list[dict[str, list[str]]]:
        return await asyncio.gather(*(task(i) for i in range(16)))

    assert_nothing_lost(engine, asyncio.run(main()))


def test_builds_stay_within_budget_while_documents_change():
    engine = make_engine(None)
    stop = threading.Event()

    def editor() -> None:
        rng = random.Random(7)
        try:
            for i in range(60):
                doc_id = f"live-{i}"
                engine.add_documents(
                    [Document(f"Live document {i} about {rng.choice(TOPICS)}. " * 5, id=doc_id)]
                )
                engine.upsert_documents([Document(f"Edited live document {i}.", id=doc_id)])
                if i % 2:
                    engine.remove_documents([doc_id])
        finally:  # an exception reaches the test through the future
            stop.set()

    def reader(index: int) -> int:
        rng = random.Random(index)
        built = 0
        while not stop.is_set() or built < 5:
            check(
                engine.build(f"live document about {rng.choice(TOPICS)}", session_id="r"),
                engine,
                "r",
            )
            built += 1
        return built

    with cf.ThreadPoolExecutor(max_workers=5) as pool:
        readers = [pool.submit(reader, i) for i in range(4)]
        pool.submit(editor).result()
        assert all(future.result() >= 5 for future in readers)
    assert len(engine.retriever) == len(DOCS) + 30


def test_token_counters_give_the_same_counts_from_many_threads():
    """The engine counts from every thread at once: tiktoken and the embedding model's
    tokenizer (a counter option) must agree with a sequential run."""
    from ctxengine.embeddings import bundled_model_path
    from ctxengine.tokens import HuggingFaceTokenCounter, TiktokenCounter

    texts = [
        f"{topic} " * (1 + i % 40) + "上下文 😀 " * (i % 7) for i, topic in enumerate(TOPICS * 20)
    ]
    for counter in (
        TiktokenCounter(),
        HuggingFaceTokenCounter.from_pretrained(bundled_model_path()),
    ):
        expected = [(counter.count(t), counter.truncate(t, 17)) for t in texts]
        with cf.ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda t, c=counter: (c.count(t), c.truncate(t, 17)), texts))
        assert got == expected


@pytest.mark.slow
def test_threads_with_the_real_model(embedder):
    """The bundled MiniLM behind retrieval, MMR, memory relevance and semantic compression."""
    engine = ContextEngine.from_documents(
        DOCS[:10],
        embedder=embedder,
        compression="semantic",
        token_budget=BUDGET,
        clock=ManualClock(),
    )
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: worker(engine, i, 12, ["shared"]), range(4)))
    assert_nothing_lost(engine, results)
