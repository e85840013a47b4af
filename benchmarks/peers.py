"""ctxengine's retrieval modes against peer retrievers from PyPI, same queries, same run.

Datasets: SciFact (BEIR train claims over 5,183 abstracts, "title. text") and LoCoMo dev
(one index per conversation: turns "Speaker: text" as documents, questions of categories
1-4 as queries, evidence turns relevant). Metrics: nDCG@10, Recall@5/10/100, and the
median milliseconds per ``retrieve(query, k=100)`` with warm embedding caches.

Every system that embeds uses the same bundled all-MiniLM-L6-v2 through ctxengine's
disk-cached embedder (wrapped as LangChain ``Embeddings`` / a LlamaIndex
``BaseEmbedding``), so a difference between rows is fusion and ranking, not the model.
Each system fetches 100 candidates per signal, the pool ctxengine's hybrid fuses. Query
embeddings come from the same warm cache for every system, so ``ms/query`` is the
retrieval work itself; the model's time per new query is printed apart.

Peers:

* LangChain ``BM25Retriever`` (langchain_community, rank_bm25 ``BM25Okapi``), with its
  default preprocessing (``str.split``) and, as a variant, ctxengine's analyzer;
* LangChain ``EnsembleRetriever`` (langchain_classic): weighted RRF (c=60, weights
  0.5/0.5) over that BM25Retriever and an ``InMemoryVectorStore`` retriever;
* LlamaIndex ``QueryFusionRetriever`` (``num_queries=1``, so no LLM call; a ``MockLLM``
  is passed so it never looks for OpenAI) in ``reciprocal_rerank`` and
  ``relative_score`` modes over ``llama-index-retrievers-bm25``'s ``BM25Retriever``
  (bm25s, English Snowball stemmer and stopwords) and a ``VectorIndexRetriever``.

    python -m benchmarks.peers [--dataset scifact|locomo|both] [--limit N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CTXENGINE_EMBED_CACHE", str(ROOT / ".cache" / "embeddings"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# ROOT first: an unrelated 'benchmarks' package in site-packages must not shadow ours
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

from benchmarks.data import load_locomo, load_scifact_corpus, load_scifact_queries  # noqa: E402
from ctxengine.embeddings import default_embedder  # noqa: E402
from ctxengine.engine import DEFAULT_RERANK  # noqa: E402
from ctxengine.metrics import mean, ndcg_at_k, recall_at_k  # noqa: E402
from ctxengine.rerank import get_reranker  # noqa: E402
from ctxengine.retrieval import HybridRetriever  # noqa: E402
from ctxengine.text import analyze  # noqa: E402

POOL = 100  # candidates per signal, and the depth of every ranking (Recall@100)
QUICK_CONVERSATION = "conv-30"
Corpus = list[tuple[str, str]]  # (id, text)
Search = Callable[[str, int], list[str]]  # (query, k) -> ids, best first
Factory = Callable[[Corpus], Search]


@dataclass
class Case:
    query: str
    relevant: dict[str, float]


@dataclass
class Split:
    """A set of queries over one corpus (LoCoMo: one per conversation)."""

    corpus: Corpus
    cases: list[Case]


@dataclass
class Dataset:
    name: str
    splits: list[Split]
    notes: list[str] = field(default_factory=list)

    @property
    def n_queries(self) -> int:
        return sum(len(s.cases) for s in self.splits)


# --- shared embeddings, wrapped for each framework -----------------------------------------


def langchain_embeddings() -> object:
    """The bundled MiniLM with ctxengine's disk cache, as LangChain ``Embeddings``."""
    from langchain_ctxengine.embeddings import ContextEngineEmbeddings

    return ContextEngineEmbeddings(default_embedder())


def llamaindex_embedding() -> object:
    """The bundled MiniLM with ctxengine's disk cache, as a LlamaIndex embed model."""
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr

    class MiniLMEmbedding(BaseEmbedding):
        _embedder: object = PrivateAttr()

        def __init__(self) -> None:
            super().__init__(model_name="all-MiniLM-L6-v2 (bundled, ctxengine cache)", embed_batch_size=256)
            self._embedder = default_embedder()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._embedder.embed(list(texts)).tolist()  # type: ignore[attr-defined]

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return MiniLMEmbedding()


class SharedCache:
    """The process-wide cached embedder behind a plain ``Embedder`` face.

    HybridRetriever sends queries straight to the model (new queries are the norm in a live
    system); the peers' wrappers read them from this cache. Handing ctxengine the same cache
    makes a query embedding free for every system alike, so ``ms/query`` compares indexing
    and fusion work; the model's cost per new query is measured on its own (``model_query_ms``).
    """

    def __init__(self) -> None:
        self.cached = default_embedder()
        self.name, self.dimension = self.cached.name, self.cached.dimension

    def embed(self, texts: Sequence[str]) -> object:
        return self.cached.embed(texts)


# --- ctxengine ---------------------------------------------------------------------------


def _hybrid(corpus: Corpus, mode: str, **options: object) -> HybridRetriever:
    return HybridRetriever([{"id": i, "text": t} for i, t in corpus], mode=mode, embedder=SharedCache(), **options)


def ctxengine_mode(mode: str, **options: object) -> Factory:
    def build(corpus: Corpus) -> Search:
        retriever = _hybrid(corpus, mode, **options)
        return lambda query, k: [d.id for d in retriever.retrieve(query, k)]

    return build


def ctxengine_reranked(rerank: object, mode: str = "hybrid") -> Factory:
    """First stage ``mode`` (top 100), then a re-ranker over those candidates."""

    def build(corpus: Corpus) -> Search:
        retriever = _hybrid(corpus, mode)
        reranker = get_reranker(rerank)

        def search(query: str, k: int) -> list[str]:
            candidates = retriever.retrieve(query, max(k, POOL))
            return [d.id for d in reranker.rerank(query, candidates, k=k)]

        return search

    return build


# --- LangChain ---------------------------------------------------------------------------


def _langchain_bm25(corpus: Corpus, preprocess: Callable[[str], list[str]] | None) -> object:
    from langchain_community.retrievers import BM25Retriever

    options = {} if preprocess is None else {"preprocess_func": preprocess}
    return BM25Retriever.from_texts(
        [t for _, t in corpus], metadatas=[{"id": i} for i, _ in corpus], k=POOL, **options
    )


def langchain_bm25(preprocess: Callable[[str], list[str]] | None = None) -> Factory:
    def build(corpus: Corpus) -> Search:
        retriever = _langchain_bm25(corpus, preprocess)

        def search(query: str, k: int) -> list[str]:
            return [d.metadata["id"] for d in retriever.invoke(query)[:k]]

        return search

    return build


def langchain_ensemble() -> Factory:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    embeddings = langchain_embeddings()

    def build(corpus: Corpus) -> Search:
        store = InMemoryVectorStore(embeddings)  # type: ignore[arg-type]
        store.add_texts([t for _, t in corpus], metadatas=[{"id": i} for i, _ in corpus])
        ensemble = EnsembleRetriever(
            retrievers=[_langchain_bm25(corpus, None), store.as_retriever(search_kwargs={"k": POOL})],
            weights=[0.5, 0.5],
            id_key="id",  # fuse by document id, not by page content (texts can repeat)
        )

        def search(query: str, k: int) -> list[str]:
            return [d.metadata["id"] for d in ensemble.invoke(query)[:k]]

        return search

    return build


# --- LlamaIndex --------------------------------------------------------------------------


def _llamaindex_retrievers(corpus: Corpus) -> tuple[object, object]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    nodes = [TextNode(text=t, id_=i) for i, t in corpus]
    index = VectorStoreIndex(nodes, embed_model=llamaindex_embedding(), show_progress=False)
    vector = index.as_retriever(similarity_top_k=POOL)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=min(POOL, len(nodes)))
    return vector, bm25


def llamaindex_bm25() -> Factory:
    def build(corpus: Corpus) -> Search:
        from llama_index.core.schema import TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        nodes = [TextNode(text=t, id_=i) for i, t in corpus]
        bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=min(POOL, len(nodes)))
        return lambda query, k: [n.node.node_id for n in bm25.retrieve(query)[:k]]

    return build


def llamaindex_fusion(mode: str) -> Factory:
    def build(corpus: Corpus) -> Search:
        from llama_index.core.llms import MockLLM
        from llama_index.core.retrievers import QueryFusionRetriever

        vector, bm25 = _llamaindex_retrievers(corpus)
        fusion = QueryFusionRetriever(
            [vector, bm25],  # type: ignore[list-item]
            llm=MockLLM(),
            mode=mode,  # type: ignore[arg-type]
            similarity_top_k=POOL,
            num_queries=1,
            use_async=False,
        )
        return lambda query, k: [n.node.node_id for n in fusion.retrieve(query)[:k]]

    return build


# --- the comparison ----------------------------------------------------------------------


@dataclass
class System:
    name: str
    group: str  # "ctxengine" or "peer"
    factory: Factory


def systems(cross_encoder: str | None = None, variants: bool = True) -> list[System]:
    out = [
        System("ctxengine keyword (BM25)", "ctxengine", ctxengine_mode("keyword")),
        System("ctxengine tfidf", "ctxengine", ctxengine_mode("tfidf")),
        System("ctxengine dense (MiniLM)", "ctxengine", ctxengine_mode("dense")),
        System("ctxengine hybrid", "ctxengine", ctxengine_mode("hybrid")),
        System("ctxengine hybrid, RRF fusion", "ctxengine", ctxengine_mode("hybrid", fusion="rrf")),
        System("ctxengine adaptive", "ctxengine", ctxengine_mode("adaptive")),
        System("ctxengine hybrid + default rerank (tags, MMR)", "ctxengine", ctxengine_reranked(list(DEFAULT_RERANK))),
    ]
    if cross_encoder:
        out.append(System("ctxengine hybrid + cross-encoder", "ctxengine",
                          ctxengine_reranked(f"cross-encoder:{cross_encoder}")))  # fmt: skip
    out += [
        System("LangChain BM25Retriever", "peer", langchain_bm25()),
        System("LangChain EnsembleRetriever (BM25 + MiniLM, RRF)", "peer", langchain_ensemble()),
        System("LlamaIndex BM25Retriever (bm25s)", "peer", llamaindex_bm25()),
        System("LlamaIndex QueryFusion reciprocal_rerank", "peer", llamaindex_fusion("reciprocal_rerank")),
        System("LlamaIndex QueryFusion relative_score", "peer", llamaindex_fusion("relative_score")),
    ]
    if variants:
        out.insert(-4, System("LangChain BM25Retriever, ctxengine analyzer", "peer variant", langchain_bm25(analyze)))
    return out


def evaluate(dataset: Dataset, chosen: Sequence[System], log: Callable[[str], None]) -> list[dict]:
    """One row per system: metrics over every query, per-query latency, index time."""
    rows = []
    for system in chosen:
        ranked_lists: list[tuple[list[str], dict[str, float]]] = []
        times: list[float] = []
        build_seconds = 0.0
        for split in dataset.splits:
            started = time.perf_counter()
            search = system.factory(split.corpus)
            search(split.cases[0].query, 1)  # lazy indexes (ctxengine builds them on first use)
            build_seconds += time.perf_counter() - started
            depth = min(POOL, len(split.corpus))
            for case in split.cases:
                started = time.perf_counter()
                ranked = search(case.query, depth)
                times.append(time.perf_counter() - started)
                ranked_lists.append((ranked, case.relevant))
        row = {
            "system": system.name,
            "group": system.group,
            "ndcg@10": mean([ndcg_at_k(r, rel, 10) for r, rel in ranked_lists]),
            "recall@5": mean([recall_at_k(r, rel, 5) for r, rel in ranked_lists]),
            "recall@10": mean([recall_at_k(r, rel, 10) for r, rel in ranked_lists]),
            "recall@100": mean([recall_at_k(r, rel, 100) for r, rel in ranked_lists]),
            "median_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * sorted(times)[int(0.95 * (len(times) - 1))],
            "index_s": build_seconds,
        }
        rows.append(row)
        log(f"  [{dataset.name}] {system.name}: nDCG@10 {row['ndcg@10']:.4f} "
            f"({row['median_ms']:.1f} ms/query, index {build_seconds:.1f} s)")  # fmt: skip
    return rows


def margins(rows: Sequence[dict], ours: str = "ctxengine hybrid") -> dict[str, float]:
    """nDCG@10 of ``ours`` minus each peer's (positive: ours is better)."""
    base = next(r["ndcg@10"] for r in rows if r["system"] == ours)
    return {r["system"]: base - r["ndcg@10"] for r in rows if r["group"].startswith("peer")}


# --- data ----------------------------------------------------------------------------------


def scifact(limit: int | None = None, quick: bool = False) -> Dataset:
    corpus = load_scifact_corpus()
    queries, qrels = load_scifact_queries()
    items = list(queries.items())[: (20 if quick and limit is None else limit)]
    notes = ["BEIR SciFact, train claims (the test split is held out), documents 'title. text'"]
    if quick:  # a slice: the claims' relevant abstracts plus the first 200 (nDCG not comparable)
        wanted = {d for qid, _ in items for d in qrels[qid]}
        corpus = [d for i, d in enumerate(corpus) if i < 200 or d.id in wanted]
        notes.append(f"quick slice: {len(corpus)} abstracts, figures not comparable to BEIR")
    cases = [Case(text, {d: float(s) for d, s in qrels[qid].items()}) for qid, text in items]
    return Dataset("scifact", [Split([(d.id, d.document_text) for d in corpus], cases)], notes)


def locomo(limit: int | None = None, quick: bool = False) -> Dataset:
    conversations = load_locomo()
    if quick:
        conversations = [c for c in conversations if c.sample_id == QUICK_CONVERSATION] or conversations[:1]
    splits = []
    for conv in conversations:
        ids = {t.dia_id for t in conv.turns}
        cases = [
            Case(q.question, {e: 1.0 for e in q.evidence if e in ids}) for q in conv.answerable()
        ]
        splits.append(Split([(t.dia_id, t.document_text) for t in conv.turns], cases))
    if limit is not None:  # first N questions overall
        left = limit
        for split in splits:
            split.cases = split.cases[: max(0, left)]
            left -= len(split.cases)
        splits = [s for s in splits if s.cases]
    notes = [f"LoCoMo dev, {len(splits)} conversation(s): turns 'Speaker: text' as documents, "
             "questions of categories 1-4 as queries, evidence turns relevant"]  # fmt: skip
    return Dataset("locomo", splits, notes)


def warm(dataset: Dataset, log: Callable[[str], None]) -> None:
    """Embed every document and query once (a no-op with a warm disk cache), so that no
    system pays for the model inside its timings."""
    embedder = default_embedder()
    texts = [t for s in dataset.splits for _, t in s.corpus] + [c.query for s in dataset.splits for c in s.cases]
    started = time.perf_counter()
    for offset in range(0, len(texts), 1000):
        embedder.embed(texts[offset : offset + 1000])
        if time.perf_counter() - started > 5:
            log(f"  [{dataset.name}] embedded {min(offset + 1000, len(texts))}/{len(texts)} texts")


def model_query_ms(queries: Sequence[str], n: int = 20) -> float:
    """Median milliseconds for the model alone to embed one new query (what a live query
    adds to every row that embeds)."""
    model = getattr(default_embedder(), "embedder", default_embedder())
    times = []
    for i, query in enumerate(queries[:n]):
        started = time.perf_counter()
        model.embed([f"{query} ({i})"])  # never cached: the raw model
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def print_rows(dataset: Dataset, rows: Sequence[dict]) -> None:
    hybrid = next((r["median_ms"] for r in rows if r["system"] == "ctxengine hybrid"), None)
    print(f"\n{dataset.name}: {dataset.n_queries} queries; " + "; ".join(dataset.notes))
    print(f"{'system':<48} {'nDCG@10':>8} {'R@5':>6} {'R@10':>6} {'R@100':>6} {'ms/q':>7} {'x hybrid':>8}")
    for r in rows:
        ratio = f"{r['median_ms'] / hybrid:.2f}" if hybrid else "-"
        print(f"{r['system']:<48} {r['ndcg@10']:>8.4f} {r['recall@5']:>6.3f} {r['recall@10']:>6.3f} "
              f"{r['recall@100']:>6.3f} {r['median_ms']:>7.1f} {ratio:>8}")  # fmt: skip
    for name, margin in margins(rows).items():
        print(f"  hybrid - {name}: {margin:+.4f} nDCG@10")


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("scifact", "locomo", "both"), default="both")
    parser.add_argument("--limit", type=int, default=None, help="first N queries per dataset")
    parser.add_argument("--quick", action="store_true", help="a small slice of each dataset")
    parser.add_argument("--cross-encoder", default=os.environ.get("CTXENGINE_CROSS_ENCODER"),
                        help="local cross-encoder model directory (adds a re-ranked row)")  # fmt: skip
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # langchain_community's sunset notice

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    loaders = {"scifact": scifact, "locomo": locomo}
    names = ["scifact", "locomo"] if args.dataset == "both" else [args.dataset]
    chosen = systems(args.cross_encoder)
    results: dict[str, dict] = {}
    for name in names:
        dataset = loaders[name](args.limit, args.quick)
        warm(dataset, log)
        rows = evaluate(dataset, chosen, log)
        print_rows(dataset, rows)
        model_ms = model_query_ms([c.query for s in dataset.splits for c in s.cases])
        print(f"  one new query through MiniLM: {model_ms:.1f} ms (not in ms/q above: query "
              "embeddings come from the shared cache for every system)")  # fmt: skip
        results[name] = {"queries": dataset.n_queries, "notes": dataset.notes, "rows": rows,
                         "margins": margins(rows), "model_query_ms": model_ms}  # fmt: skip
    return results


if __name__ == "__main__":
    main()
