"""Dense relevance embeds the query without the session's speaker names."""

from __future__ import annotations

import numpy as np

from ctxengine import ManualClock
from ctxengine.embeddings.base import CallableEmbedder
from ctxengine.memory import DecayMemory
from ctxengine.memory.relevance import without_speakers


def test_without_speakers_drops_whole_names_and_possessives():
    roles = ["Melanie", "Caroline"]
    assert without_speakers("What is Melanie's reason for running?", roles) == (
        "What is reason for running?"
    )
    assert without_speakers("Did CAROLINE meet melanie\u2019s kids?", roles) == "Did meet kids?"
    # whole words only, and a query that is only a name keeps it (nothing else to embed)
    assert without_speakers("Is Melanies or Carolineland real?", roles) == (
        "Is Melanies or Carolineland real?"
    )
    assert without_speakers("Melanie?", roles) == "Melanie?"
    assert without_speakers("What did Ann Lee tell Ann?", ["Ann", "Ann Lee"]) == "What did tell ?"
    assert without_speakers("anything", []) == "anything"


class Recorder:
    """A hashing-like embedder that records what it was asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        rng = [np.random.default_rng(sum(map(ord, t))) for t in texts]
        return np.array([r.normal(size=8) for r in rng])


def _memory(mask: bool) -> tuple[DecayMemory, Recorder]:
    recorder = Recorder()
    memory = DecayMemory(
        embedder=CallableEmbedder(recorder, name="recorder", dimension=8),
        clock=ManualClock(1_700_000_000.0),
        mask_speakers=mask,
    )
    memory.add("Melanie", "I painted a sunset last week.", session_id="s")
    memory.add("Caroline", "I went to a support group.", session_id="s")
    recorder.texts.clear()
    return memory, recorder


def test_dense_relevance_embeds_the_query_without_speaker_names():
    memory, recorder = _memory(mask=True)
    memory.recall("What did Melanie paint?", 100, session_id="s")
    assert recorder.texts == ["What did paint?"]
    assert memory.dense_query("What did Melanie paint?", "s") == "What did paint?"
    # the lexical part still reads the name: Melanie's turn is the more relevant one
    scored = {s.turn.role: s.components["lexical"] for s in memory.score("Melanie", session_id="s")}
    assert scored["Melanie"] > scored["Caroline"]


def test_mask_speakers_false_embeds_the_query_as_given():
    memory, recorder = _memory(mask=False)
    memory.recall("What did Melanie paint?", 100, session_id="s")
    assert recorder.texts == ["What did Melanie paint?"]
    assert memory.dense_query("What did Melanie paint?", "s") == "What did Melanie paint?"
