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
# ROOT first: an unrelated 'benchmarks' package in site-packages must not shadow ours
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)

# the same collections as the mode table of retrieval_quality.py
from benchmarks.retrieval_quality import Collection, locomo, scifact
from ctxengine.embeddings import default_embedder
from ctxengine.metrics import mean, ndcg_at_k, recall_at_k
from ctxengine.rerank import DEFAULT_RERANKER, get_reranker
from ctxengine.retrieval import HybridRetriever
from ctxengine.text import analyze
from ctxengine.types import Document

POOL = 100  # candidates per signal, and the depth of every ranking (Recall@100)
Search = Callable[[str, int], list[str]]  # (query, k) -> ids, best first
Factory = Callable[[list[Document]], Search]


@dataclass
class Dataset:
    name: str
    collections: list[Collection]  # one index each (LoCoMo: one per conversation)
    notes: list[str] = field(default_factory=list)

    @property
    def n_queries(self) -> int:
        return sum(len(c.queries) for c in self.collections)


# --- shared embeddings, wrapped for each framework -----------------------------------------


def langchain_embeddings() -> object:
    """The bundled MiniLM with ctxengine's disk cache, as LangChain ``Embeddings``."""
    from langchain_ctxengine.embeddings import ContextEngineEmbeddings

    return ContextEngineEmbeddings(default_embedder())


def llamaindex_embedding() -> object:
    """The same, as a LlamaIndex embed model (batches of 256: the cache, not the model, answers)."""
    from llamaindex_ctxengine.embeddings import ContextEngineEmbedding

    return ContextEngineEmbedding(default_embedder(), embed_batch_size=256)


class SharedCache:
    """The process-wide cached embedder behind a plain ``Embedder`` face.

    HybridRetriever sends queries straight to the model (new queries are the norm in a live
    system): it unwraps a ``CachedEmbedder`` to reach the model, but this class is not one,
    so its queries go through the disk cache instead. The peers' wrappers read them there too. Handing ctxengine the same cache
    makes a query embedding free for every system alike, so ``ms/query`` compares indexing
    and fusion work; the model's cost per new query is measured on its own (``model_query_ms``).
    """

    def __init__(self) -> None:
        self.cached = default_embedder()
        self.name, self.dimension = self.cached.name, self.cached.dimension

    def embed(self, texts: Sequence[str]) -> object:
        return self.cached.embed(texts)


# --- ctxengine ---------------------------------------------------------------------------


def _hybrid(docs: list[Document], mode: str, **options: object) -> HybridRetriever:
    return HybridRetriever(docs, mode=mode, embedder=SharedCache(), **options)


def ctxengine_mode(mode: str, **options: object) -> Factory:
    def build(docs: list[Document]) -> Search:
        retriever = _hybrid(docs, mode, **options)
        return lambda query, k: [d.id for d in retriever.retrieve(query, k)]

    return build


def ctxengine_reranked(rerank: object, mode: str = "hybrid") -> Factory:
    """First stage ``mode`` (top 100), then a re-ranker over those candidates."""

    def build(docs: list[Document]) -> Search:
        retriever = _hybrid(docs, mode)
        reranker = get_reranker(rerank)

        def search(query: str, k: int) -> list[str]:
            candidates = retriever.retrieve(query, max(k, POOL))
            return [d.id for d in reranker.rerank(query, candidates, k=k)]

        return search

    return build


# --- LangChain ---------------------------------------------------------------------------


def _langchain_bm25(docs: list[Document], preprocess: Callable[[str], list[str]] | None) -> object:
    from langchain_community.retrievers import BM25Retriever

    options = {} if preprocess is None else {"preprocess_func": preprocess}
    return BM25Retriever.from_texts(
        [d.text for d in docs], metadatas=[{"id": d.id} for d in docs], k=POOL, **options
    )


def langchain_bm25(preprocess: Callable[[str], list[str]] | None = None) -> Factory:
    def build(docs: list[Document]) -> Search:
        retriever = _langchain_bm25(docs, preprocess)

        def search(query: str, k: int) -> list[str]:
            return [d.metadata["id"] for d in retriever.invoke(query)[:k]]

        return search

    return build


def langchain_ensemble() -> Factory:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    embeddings = langchain_embeddings()

    def build(docs: list[Document]) -> Search:
        store = InMemoryVectorStore(embeddings)  # type: ignore[arg-type]
        store.add_texts([d.text for d in docs], metadatas=[{"id": d.id} for d in docs])
        ensemble = EnsembleRetriever(
            retrievers=[_langchain_bm25(docs, None), store.as_retriever(search_kwargs={"k": POOL})],
            weights=[0.5, 0.5],
            id_key="id",  # fuse by document id, not by page content (texts can repeat)
        )

        def search(query: str, k: int) -> list[str]:
            return [d.metadata["id"] for d in ensemble.invoke(query)[:k]]

        return search

    return build


# --- LlamaIndex --------------------------------------------------------------------------


def _llamaindex_retrievers(docs: list[Document]) -> tuple[object, object]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    nodes = [TextNode(text=d.text, id_=d.id) for d in docs]
    index = VectorStoreIndex(nodes, embed_model=llamaindex_embedding(), show_progress=False)
    vector = index.as_retriever(similarity_top_k=POOL)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=min(POOL, len(nodes)))
    return vector, bm25


def llamaindex_bm25() -> Factory:
    def build(docs: list[Document]) -> Search:
        from llama_index.core.schema import TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        nodes = [TextNode(text=d.text, id_=d.id) for d in docs]
        bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=min(POOL, len(nodes)))
        return lambda query, k: [n.node.node_id for n in bm25.retrieve(query)[:k]]

    return build


def llamaindex_fusion(mode: str) -> Factory:
    def build(docs: list[Document]) -> Search:
        from llama_index.core.llms import MockLLM
        from llama_index.core.retrievers import QueryFusionRetriever

        vector, bm25 = _llamaindex_retrievers(docs)
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
        System(
            f"ctxengine hybrid + default rerank ({', '.join(DEFAULT_RERANKER)})",
            "ctxengine",
            ctxengine_reranked(None),
        ),
    ]
    if cross_encoder:
        out.append(
            System(
                "ctxengine hybrid + cross-encoder",
                "ctxengine",
                ctxengine_reranked(f"cross-encoder:{cross_encoder}"),
            )
        )
    out += [
        System("LangChain BM25Retriever", "peer", langchain_bm25()),
        System("LangChain EnsembleRetriever (BM25 + MiniLM, RRF)", "peer", langchain_ensemble()),
        System("LlamaIndex BM25Retriever (bm25s)", "peer", llamaindex_bm25()),
        System(
            "LlamaIndex QueryFusion reciprocal_rerank",
            "peer",
            llamaindex_fusion("reciprocal_rerank"),
        ),
        System(
            "LlamaIndex QueryFusion relative_score", "peer", llamaindex_fusion("relative_score")
        ),
    ]
    if variants:
        out.insert(
            -4,
            System(
                "LangChain BM25Retriever, ctxengine analyzer",
                "peer variant",
                langchain_bm25(analyze),
            ),
        )
    return out


def evaluate(dataset: Dataset, chosen: Sequence[System], log: Callable[[str], None]) -> list[dict]:
    """One row per system: metrics over every query, per-query latency, index time."""
    rows = []
    for system in chosen:
        ranked_lists: list[tuple[list[str], dict[str, float]]] = []
        times: list[float] = []
        build_seconds = 0.0
        for collection in dataset.collections:
            started = time.perf_counter()
            search = system.factory(collection.documents)
            search(collection.queries[0][0], 1)  # lazy indexes (ctxengine builds them on first use)
            build_seconds += time.perf_counter() - started
            depth = min(POOL, len(collection.documents))
            for query, relevant in collection.queries:
                started = time.perf_counter()
                ranked = search(query, depth)
                times.append(time.perf_counter() - started)
                ranked_lists.append((ranked, relevant))
        per_query = [ndcg_at_k(r, rel, 10) for r, rel in ranked_lists]
        row = {
            "system": system.name,
            "group": system.group,
            "ndcg@10": mean(per_query),
            **{
                f"recall@{k}": mean([recall_at_k(r, rel, k) for r, rel in ranked_lists])
                for k in (5, 10, 100)
            },
            "median_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * float(np.percentile(times, 95)),
            "index_s": build_seconds,
            "queries_s": sum(times),
            "per_query": per_query,  # for the paired margins; dropped from the results
        }
        rows.append(row)
        log(
            f"  [{dataset.name}] {system.name}: nDCG@10 {row['ndcg@10']:.4f} "
            f"({row['median_ms']:.1f} ms/query, index {build_seconds:.1f} s, all queries {sum(times):.1f} s)"
        )
    return rows


def margins(rows: Sequence[dict], ours: str = "ctxengine hybrid") -> dict[str, dict]:
    """nDCG@10 of ``ours`` minus each peer's, with the queries it wins and loses and a 95%
    paired-bootstrap interval of the mean difference (fixed seed: same figures every run)."""
    base = np.array(next(r["per_query"] for r in rows if r["system"] == ours))
    rng = np.random.default_rng(0)
    samples = rng.integers(0, len(base), size=(1000, len(base)))
    out = {}
    for row in rows:
        if row["group"].startswith("peer"):
            diff = base - np.array(row["per_query"])
            means = diff[samples].mean(axis=1)
            out[row["system"]] = {
                "margin": float(diff.mean()),
                "wins": int((diff > 0).sum()),
                "losses": int((diff < 0).sum()),
                "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
            }
    return out


# --- data ----------------------------------------------------------------------------------


# From ../shared/data/README.md. They are on BEIR's *test* claims, ours on the train claims
# (the test labels are held out), so they orient rather than compare.
PUBLISHED_SCIFACT = (
    "Published nDCG@10 on BEIR SciFact test, for orientation: BM25 0.665 (BEIR paper), 0.679 (Pyserini), "
    "0.687 (bm25s); all-MiniLM-L6-v2 alone ~0.64-0.65; bge-small-en-v1.5 0.713; bge-base 0.741; BM25 + "
    "bge-base fused by min-max average 0.747, by RRF 0.742; BM25 top-100 re-ranked by the MiniLM-L6 "
    "cross-encoder 0.688. Those are on the 300 test claims, the rows above on the 809 train claims: "
    "compare the single-signal rows with the published BM25 and MiniLM figures, not to the third decimal."
)


def load(name: str, quick: bool, limit: int | None) -> Dataset:
    """``retrieval_quality``'s collections (so the mode rows there and here agree)."""
    collections = scifact(quick) if name == "scifact" else locomo(quick)
    if limit is not None:  # the first N queries overall
        for collection in collections:
            collection.queries = collection.queries[: max(0, limit)]
            limit -= len(collection.queries)
        collections = [c for c in collections if c.queries]
    if name == "scifact":
        notes = [
            "BEIR SciFact, train claims (the test split is held out), documents 'title. text'",
            PUBLISHED_SCIFACT,
        ]
    else:
        notes = [
            (
                f"LoCoMo dev, {len(collections)} conversation(s): turns 'Speaker: text' as documents, "
                "questions of categories 1-4 as queries, evidence turns relevant"
            )
        ]
    if quick:
        notes.append("quick slice: figures not comparable")
    return Dataset(name, collections, notes)


def warm(dataset: Dataset, log: Callable[[str], None]) -> None:
    """Embed every document and query once (a no-op with a warm disk cache), so that no
    system pays for the model inside its timings."""
    embedder = default_embedder()
    texts = [d.text for c in dataset.collections for d in c.documents]
    texts += [q for c in dataset.collections for q, _ in c.queries]
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


def print_rows(dataset: Dataset, rows: Sequence[dict], paired: dict[str, dict]) -> None:
    hybrid = next((r["median_ms"] for r in rows if r["system"] == "ctxengine hybrid"), None)
    width = max(len(r["system"]) for r in rows)
    print(f"\n{dataset.name}: {dataset.n_queries} queries; " + "; ".join(dataset.notes))
    print(
        f"{'system':<{width}} {'nDCG@10':>8} {'R@5':>6} {'R@10':>6} {'R@100':>6} {'ms/q':>7} {'x hybrid':>8}"
    )
    for r in rows:
        ratio = f"{r['median_ms'] / hybrid:.2f}" if hybrid else "-"
        print(
            f"{r['system']:<{width}} {r['ndcg@10']:>8.4f} {r['recall@5']:>6.3f} {r['recall@10']:>6.3f} "
            f"{r['recall@100']:>6.3f} {r['median_ms']:>7.1f} {ratio:>8}"
        )
    for name, m in paired.items():
        print(
            f"  hybrid - {name}: {m['margin']:+.4f} nDCG@10 (95% CI {m['ci95'][0]:+.4f}..{m['ci95'][1]:+.4f}; "
            f"better on {m['wins']}, worse on {m['losses']} queries)"
        )


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("scifact", "locomo", "both"), default="both")
    parser.add_argument("--limit", type=int, default=None, help="first N queries per dataset")
    parser.add_argument("--quick", action="store_true", help="a small slice of each dataset")
    parser.add_argument(
        "--cross-encoder",
        default=os.environ.get("CTXENGINE_CROSS_ENCODER"),
        help="local cross-encoder model directory (adds a re-ranked row)",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings(
        "ignore", category=DeprecationWarning
    )  # langchain_community's sunset notice

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    names = ["scifact", "locomo"] if args.dataset == "both" else [args.dataset]
    chosen = systems(args.cross_encoder)
    results: dict[str, dict] = {}
    for name in names:
        dataset = load(name, args.quick, args.limit)
        warm(dataset, log)
        rows = evaluate(dataset, chosen, log)
        paired = margins(rows)  # a bootstrap: computed once, printed and returned
        print_rows(dataset, rows, paired)
        model_ms = model_query_ms([q for c in dataset.collections for q, _ in c.queries])
        print(
            f"  one new query through MiniLM: {model_ms:.1f} ms (not in ms/q above: query "
            "embeddings come from the shared cache for every system)"
        )
        for row in rows:
            del row["per_query"]
        results[name] = {
            "queries": dataset.n_queries,
            "notes": dataset.notes,
            "rows": rows,
            "margins": paired,
            "model_query_ms": model_ms,
        }
    return results


if __name__ == "__main__":
    main()
