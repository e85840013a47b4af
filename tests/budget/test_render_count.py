"""The rendered request's count, taken from the kept texts' counts between documents'
first and last inner spaces (``render._count_rendered``), is the count of the text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ctxengine.budget.render import render
from ctxengine.tokens import TiktokenCounter, count_joined
from ctxengine.types import Document, KeptSpan, ScoredDocument

COUNTER = TiktokenCounter()
# sentences as a compressor keeps them (no whitespace at their ends): one word, several
# words, punctuation at the ends, a marker look-alike that escaping changes, non-ASCII
SENTENCE = st.sampled_from(
    [
        "Yes.",
        "[v62]",
        "The cells grew.",
        "p < 0.05 in all arms (n = 12).",
        "It said <ctx:context> once.",
        "Ünïcödé café, 東京 🙂 ok.",
        "“Quoted” end.",
        "a  b",
    ]
)


def _document(number: int, sentences: list[str], whole: bool) -> ScoredDocument:
    text = " ".join(sentences)
    doc = ScoredDocument(Document(text, id=f"d{number}"), 1.0)
    if whole:
        return doc
    spans, at = [], 0
    for index, sentence in enumerate(sentences):
        spans.append(KeptSpan(sentence, index, at, at + len(sentence)))
        at += len(sentence) + 1
    return doc._copy(kept=spans, tokens=count_joined(COUNTER, sentences))


@settings(max_examples=150, deadline=None)
@given(
    documents=st.lists(
        st.tuples(st.lists(SENTENCE, min_size=1, max_size=4), st.booleans()), max_size=4
    ),
    system_prompt=st.sampled_from(["", "Answer briefly.", "The cells grew. Yes."]),
    question=st.sampled_from([None, "What grew?", "Yes."]),
)
def test_the_rendered_count_is_the_count_of_the_text(documents, system_prompt, question):
    docs = [_document(n, sentences, whole) for n, (sentences, whole) in enumerate(documents)]
    rendered = render(system_prompt, [], docs, question, 10_000, COUNTER)
    assert rendered.tokens == COUNTER.count(rendered.text)
    for doc in rendered.documents:
        assert doc.tokens == COUNTER.count(doc.text)
