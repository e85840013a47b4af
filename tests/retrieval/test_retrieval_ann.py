"""The ANN path of dense retrieval (FAISS IVF past ``ann_threshold`` dense rows): it returns
the exact scan's top hits, never a removed or replaced document, applies filters, and a
saved index loads memory-mapped with the same results; a corrupt ANN file is refused."""

import json

import numpy as np
import pytest

from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import IndexFormatError, InvalidInputError, InvalidTypeError
from ctxengine.persist import ANN_INDEX, load_index, save_index
from ctxengine.retrieval import HybridRetriever
from ctxengine.retrieval.ann import AnnIndex, LabelMap


@pytest.fixture(scope="module")
def corpus(shared_data):
    rows = []
    with open(shared_data / "scifact" / "corpus.jsonl", encoding="utf-8") as handle:
        for i, line in zip(range(500), handle):
            row = json.loads(line)
            rows.append(
                {
                    "id": row["_id"],
                    "text": f"{row['title']}. {row['text']}",
                    "metadata": {"year": 2000 + i % 10},
                }
            )
    with open(shared_data / "scifact" / "queries_train.jsonl", encoding="utf-8") as handle:
        queries = [json.loads(line)["text"] for line, _ in zip(handle, range(30))]
    return rows, queries


# deterministic vectors of real text: the ANN's job (candidates, removals, files) does not
# depend on the model, and this keeps the suite off MiniLM
EMBEDDER = HashingEmbedder(256)


def _pair(docs, **options):
    exact = HybridRetriever(docs, embedder=EMBEDDER, ann_threshold=None, **options)
    approximate = HybridRetriever(docs, embedder=EMBEDDER, ann_threshold=100, **options)
    return exact, approximate


def _ids(hits):
    return [hit.document.id for hit in hits]


def test_above_the_threshold_the_ann_path_returns_the_exact_top_hits(corpus):
    docs, queries = corpus
    exact, approximate = _pair(docs)
    overlap = {"dense": [], "hybrid": []}
    for query in queries:
        for mode, scores in overlap.items():
            want = _ids(exact.retrieve(query, k=10, mode=mode))
            got = approximate.retrieve(query, k=10, mode=mode)
            scores.append(len(set(want) & set(_ids(got))) / 10)
            if mode == "dense":  # scores of what it returns are exact, not quantized
                truth = exact.score_all(query)["dense"]
                position = {d.id: i for i, d in enumerate(exact.documents)}
                for hit in got:
                    assert hit.score == pytest.approx(float(truth[position[hit.document.id]]))
    assert approximate.ann_index is not None and exact.ann_index is None  # the paths taken
    assert np.mean(overlap["dense"]) >= 0.95
    assert np.mean(overlap["hybrid"]) >= 0.95


def test_removed_and_replaced_documents_never_come_back(corpus):
    docs, queries = corpus
    _, retriever = _pair(docs)
    gone: set[str] = set()
    for query in queries[:10]:
        hits = _ids(retriever.retrieve(query, k=3, mode="dense"))
        retriever.remove(hits[0])
        retriever.upsert({"id": hits[1], "text": "An unrelated note about zebra migration."})
        gone.update(hits[:2])
        after = _ids(retriever.retrieve(query, k=50, mode="dense"))
        assert hits[0] not in after and hits[1] not in after[:3]
    # the index holds exactly the live rows: removals deleted, replacements re-added
    live = sum(1 + len(e.passages) for e in retriever._snapshot().entries)
    assert retriever.ann_index.size == live
    for query in queries:
        for hit in retriever.retrieve(query, k=20, mode="hybrid"):
            assert hit.document.id not in gone or "zebra" in hit.document.text


def test_filters_apply_on_the_ann_path(corpus):
    docs, queries = corpus
    exact, approximate = _pair(docs)
    for where in ({"year": {"$gte": 2003}}, {"year": 2004}):  # 70% pass, 10% pass
        for query in queries[:10]:
            got = approximate.retrieve(query, k=10, filter=where)
            assert got and all(exact.get(h.document.id).metadata["year"] >= 2003 for h in got)
            want = _ids(exact.retrieve(query, k=10, filter=where))
            assert len(set(want) & set(_ids(got))) >= 8


def test_save_and_memory_mapped_load_give_the_same_results(corpus, tmp_path):
    docs, queries = corpus
    _, retriever = _pair(docs)
    before = {q: _ids(retriever.retrieve(q, k=10)) for q in queries}
    save_index(retriever, tmp_path / "index")
    loaded = load_index(tmp_path / "index", embedder=EMBEDDER)
    assert loaded.ann_index is not None and loaded.ann_index.mapped
    assert {q: _ids(loaded.retrieve(q, k=10)) for q in queries} == before
    # a write copies the mapped lists into memory first, then applies
    victim = before[queries[0]][0]
    loaded.remove(victim)
    assert victim not in _ids(loaded.retrieve(queries[0], k=50))
    assert not loaded.ann_index.mapped
    unmapped = load_index(tmp_path / "index", embedder=EMBEDDER, mmap=False)
    assert not unmapped.ann_index.mapped
    assert _ids(unmapped.retrieve(queries[1], k=10)) == before[queries[1]]


def test_a_corrupted_ann_file_is_refused_and_nothing_is_lost(corpus, tmp_path):
    docs, queries = corpus
    _, retriever = _pair(docs[:300])
    retriever.retrieve(queries[0], k=5)
    path = save_index(retriever, tmp_path / "index")
    saved = {p.name: p.read_bytes() for p in path.iterdir()}
    assert ANN_INDEX in saved
    corrupt = bytearray(saved[ANN_INDEX])
    corrupt[len(corrupt) // 2] ^= 0xFF
    (path / ANN_INDEX).write_bytes(bytes(corrupt))
    with pytest.raises(IndexFormatError, match="checksum"):
        load_index(path, embedder=EMBEDDER)
    # the refusal deleted and rewrote nothing: every other file is as saved
    after = {p.name: p.read_bytes() for p in path.iterdir()}
    assert after.keys() == saved.keys()
    assert all(after[name] == data for name, data in saved.items() if name != ANN_INDEX)
    (path / ANN_INDEX).write_bytes(saved[ANN_INDEX])
    restored = load_index(path, embedder=EMBEDDER)
    assert _ids(restored.retrieve(queries[0], k=5)) == _ids(retriever.retrieve(queries[0], k=5))


def test_save_compacts_the_lexical_segments(corpus, tmp_path):
    docs, queries = corpus
    retriever = HybridRetriever(docs[:200], mode="keyword")
    retriever.retrieve(queries[0])
    for doc in docs[200:210]:  # one document at a time: one BM25 segment each
        retriever.add(doc)
        retriever.retrieve(queries[0])
    snap = retriever._snapshot()
    assert snap.peek("bm25").segments > 1
    before = {q: _ids(retriever.retrieve(q, k=10)) for q in queries}
    scores = retriever.score_all(queries[1])["bm25"]
    save_index(retriever, tmp_path / "index")
    assert retriever._snapshot().peek("bm25").segments == 1
    assert {q: _ids(retriever.retrieve(q, k=10)) for q in queries} == before
    np.testing.assert_allclose(retriever.score_all(queries[1])["bm25"], scores, rtol=1e-6)


def test_label_map_drops_labels_of_no_live_document():
    labels = LabelMap.build(np.array([10, 0, 5]), np.array([2, 3, 1]))
    # 3, 4 fall in no block (a removed document's), 99 is newer than the snapshot
    assert labels.owners(np.array([11, 3, 0, 2, 5, 99, -1, 4])).tolist() == [0, 1, 2]


def test_ann_threshold_is_validated():
    for bad in (0, -5, 2.5, "50k", True):
        with pytest.raises((InvalidInputError, InvalidTypeError)):
            HybridRetriever(ann_threshold=bad)
    assert HybridRetriever(ann_threshold=None).ann_threshold is None


def test_a_foreign_faiss_file_is_refused(tmp_path):
    import faiss

    faiss.write_index(faiss.IndexFlatL2(8), str(tmp_path / "flat.faiss"))
    with pytest.raises(IndexFormatError):
        AnnIndex.read(tmp_path / "flat.faiss", dimension=16)
