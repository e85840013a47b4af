"""Does decay bury what is still relevant? Memory evidence recall on LoCoMo.

Each LoCoMo conversation is replayed turn by turn into the memory with its real session
dates (role = speaker name). At the end, for every question of categories 1-4, each
system fills a history slot of B tokens (cl100k_base, the exact joined rendering the
engine writes); the metric is the share of the question's evidence turns in the slot,
averaged over questions.

Rows: the last turns that fit (token window), the reference article's memory
(``DecayMemory.article``), relevance-only selection (BM25; MiniLM cosine), cosine with a
one-day decay multiplied in, ctxengine's default ``DecayMemory()``, and variants that take
one ingredient out. ``spread@512`` is the lowest and highest per-conversation figure.
``--loo`` adds a leave-one-conversation-out check of the defaults.

    python -m benchmarks.memory_quality            # the 5 dev conversations (a few minutes)
    python -m benchmarks.memory_quality --sweep --loo   # + variations, held-out check (~30 min)
    python -m benchmarks.memory_quality --quick    # one conversation (smoke test)
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Before importing ctxengine: embeddings of LoCoMo turns are cached on disk across runs.

import numpy as np

from benchmarks.data import LocomoConversation, load_locomo
from ctxengine.clock import ManualClock
from ctxengine.embeddings import default_embedder
from ctxengine.formatting import render_turn
from ctxengine.memory import DecayMemory, InMemoryStore
from ctxengine.memory.packing import pack_turns
from ctxengine.retrieval.lexical import BM25Index
from ctxengine.text import analyze
from ctxengine.tokens import TiktokenCounter
from ctxengine.types import ScoredTurn, Turn

BUDGETS = (256, 512, 1024)
QUICK_CONVERSATION = "conv-30"  # the shortest dev conversation
DAY = 86_400.0

# name -> DecayMemory keyword arguments (None: a peer computed outside DecayMemory)
MEMORY_ROWS: dict[str, dict] = {
    "ctxengine default": {},
    "  lexical relevance only": {"relevance": "lexical"},
    "  no neighbour spread": {"neighbour_weight": 0.0},
    "  speaker names in the dense query": {"mask_speakers": False},
    "  keep_recent=0": {"keep_recent": 0},
    "  keep_recent=2": {"keep_recent": 2},
    "  relevance_weight=1": {"relevance_weight": 1.0},
}
# --sweep: the defaults the README calls flat, one at a time
SWEEP_ROWS: dict[str, dict] = {
    "  relevance_weight=20": {"relevance_weight": 20.0},
    "  lexical_weight=0.4": {"lexical_weight": 0.4},
    "  lexical_weight=0.6": {"lexical_weight": 0.6},
    "  neighbour_weight=0.25": {"neighbour_weight": 0.25},
    "  neighbour_weight=0.75": {"neighbour_weight": 0.75},
    "  dense_floor=0": {"dense_floor": 0.0},
    "  half-lives 1 hour": {"half_life": 3600.0, "freshness_half_life": 3600.0},
    "  half-lives 30 days": {"half_life": 30 * DAY, "freshness_half_life": 30 * DAY},
    "  half-lives 1 year": {"half_life": 365 * DAY, "freshness_half_life": 365 * DAY},
}
Selector = Callable[[str, int], set[str]]


class Replay:
    """One conversation replayed into a store, plus the peers' per-turn features."""

    def __init__(self, conversation: LocomoConversation, counter: TiktokenCounter) -> None:
        self.conversation = conversation
        self.counter = counter
        self.session = conversation.sample_id
        self.now = conversation.turns[-1].timestamp  # questions are asked at the end
        self.clock = ManualClock(conversation.turns[0].timestamp)
        self.store = InMemoryStore()
        writer = DecayMemory(self.store, clock=self.clock, token_counter=counter)
        for turn in conversation.turns:
            writer.add(
                turn.speaker,
                turn.text,
                session_id=self.session,
                timestamp=turn.timestamp,
                metadata={"dia_id": turn.dia_id},
            )
        self.clock.set(self.now)
        self.dropped = len(conversation.turns) - self.store.count(self.session)
        # Peers see every turn, dedup or not.
        self.turns = [
            Turn(
                t.speaker,
                t.text,
                self.session,
                t.timestamp,
                1.0,
                t.timestamp,
                id=t.dia_id,
                metadata={"dia_id": t.dia_id},
                seq=i,
            )
            for i, t in enumerate(conversation.turns)
        ]
        self.texts = [render_turn(t.role, t.content) for t in self.turns]
        self.tokens = [counter.count(text) for text in self.texts]
        self.bm25 = BM25Index.from_tokens([analyze(text) for text in self.texts], k1=1.5, b=0.75)
        self.vectors = default_embedder().embed(self.texts)

    def memory(self, **options) -> DecayMemory:
        return DecayMemory(self.store, clock=self.clock, token_counter=self.counter, **options)

    def _pack(self, scores: np.ndarray, budget: int) -> set[str]:
        scored = [
            ScoredTurn(t, float(s), {}, n) for t, s, n in zip(self.turns, scores, self.tokens)
        ]
        scored.sort(key=lambda s: (-s.effective, -s.turn.seq))
        return {s.turn.id for s in pack_turns(scored, budget, self.counter)}

    def window(self, question: str, budget: int) -> set[str]:
        kept: set[str] = set()
        used = -1
        for turn, tokens in zip(reversed(self.turns), reversed(self.tokens)):
            if used + tokens + 1 > budget:
                break
            kept.add(turn.id)
            used += tokens + 1
        return kept

    def bm25_only(self, question: str, budget: int) -> set[str]:
        return self._pack(self.bm25.scores(analyze(question)), budget)

    def cosine(self, question: str) -> np.ndarray:
        return self.vectors @ default_embedder().embed([question])[0]

    def cosine_only(self, question: str, budget: int) -> set[str]:
        return self._pack(self.cosine(question), budget)

    def cosine_decayed(self, question: str, budget: int) -> set[str]:
        age = np.array([self.now - t.timestamp for t in self.turns])
        return self._pack(self.cosine(question) * 0.5 ** (age / DAY), budget)

    def selector(self, memory: DecayMemory) -> Selector:
        def select(question: str, budget: int) -> set[str]:
            found = memory.recall(question, budget, session_id=self.session)
            return {s.turn.metadata["dia_id"] for s in found}

        return select


def evidence_recall(replay: Replay, select: Selector) -> dict[int, float]:
    """Mean share of evidence turns in the slot, per budget."""
    out = {}
    questions = replay.conversation.answerable()
    ids = {t.dia_id for t in replay.conversation.turns}
    for budget in BUDGETS:
        shares = []
        for question in questions:
            evidence = set(question.evidence) & ids
            shares.append(len(select(question.question, budget) & evidence) / len(evidence))
        out[budget] = statistics.fmean(shares)
    return out


def systems(replay: Replay, sweep: bool = False) -> dict[str, Selector]:
    rows: dict[str, Selector] = {
        "token window (last turns)": replay.window,
        "article memory": replay.selector(
            DecayMemory.article(replay.store, clock=replay.clock, token_counter=replay.counter)
        ),
        "relevance only: BM25": replay.bm25_only,
        "relevance only: MiniLM cosine": replay.cosine_only,
        "cosine x 1-day decay": replay.cosine_decayed,
    }
    for name, options in {**MEMORY_ROWS, **(SWEEP_ROWS if sweep else {})}.items():
        rows[name] = replay.selector(replay.memory(**options))
    return rows


def weighted(
    per_conversation: dict[str, dict[int, float]], counts: dict[str, int], budget: int
) -> float:
    total = sum(counts[c] for c in per_conversation)
    return sum(per_conversation[c][budget] * counts[c] for c in per_conversation) / total


def leave_one_out(
    replays: Sequence[Replay], counts: dict[str, int], bm25: dict[str, dict[int, float]]
) -> list[str]:
    """Pick the best of a small grid on four conversations, score it on the fifth (at 512
    tokens), next to the default and BM25 on that conversation."""
    grid = list(itertools.product((20.0, 40.0, 80.0), (0.25, 0.5, 0.75), (0.3, 0.5, 0.7)))
    results: dict[tuple, dict[str, dict[int, float]]] = {}
    for weight, neighbour, lexical in grid:
        options = {
            "relevance_weight": weight,
            "neighbour_weight": neighbour,
            "lexical_weight": lexical,
        }
        results[(weight, neighbour, lexical)] = {
            r.session: evidence_recall(r, r.selector(r.memory(**options))) for r in replays
        }
    default = (40.0, 0.5, 0.5)
    header = "held out   best on the other four (weight, neighbour, lexical)   held-out@512"
    lines = [header + "   default@512   BM25@512"]
    for replay in replays:
        others = [r.session for r in replays if r is not replay]
        best = max(grid, key=lambda g: weighted({c: results[g][c] for c in others}, counts, 512))
        lines.append(
            f"{replay.session:<10} {best!s:<52} {results[best][replay.session][512]:>8.3f}"
            f"   {results[default][replay.session][512]:>10.3f}"
            f"   {bm25[replay.session][512]:>8.3f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> dict[str, dict[int, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_CONVERSATION}")
    parser.add_argument("--loo", action="store_true", help="leave-one-conversation-out check")
    parser.add_argument(
        "--sweep", action="store_true", help="one-parameter variations of the defaults"
    )
    parser.add_argument("--data", default=None, help="path to locomo_dev5.json")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    conversations = load_locomo(args.data)
    if args.quick:
        conversations = [
            c for c in conversations if c.sample_id == QUICK_CONVERSATION
        ] or conversations[:1]
    counter = TiktokenCounter("cl100k_base")
    replays = [Replay(c, counter) for c in conversations]
    counts = {r.session: len(r.conversation.answerable()) for r in replays}
    per: dict[str, dict[str, dict[int, float]]] = {}
    for replay in replays:
        for name, select in systems(replay, args.sweep).items():
            per.setdefault(name, {})[replay.session] = evidence_recall(replay, select)

    dropped = sum(r.dropped for r in replays)
    turns = sum(len(r.conversation.turns) for r in replays)
    print(
        f"LoCoMo evidence recall, {len(replays)} conversation(s), {sum(counts.values())} questions "
        f"(cat 1-4), {turns} turns ({dropped} dropped by dedup); tokens: cl100k_base"
    )
    header = (
        f"{'system':<32}" + "".join(f"{'B=' + str(b):>8}" for b in BUDGETS) + f"{'spread@512':>16}"
    )
    print(header)
    print("-" * len(header))
    table: dict[str, dict[int, float]] = {}
    for name, by_conversation in per.items():
        table[name] = {b: weighted(by_conversation, counts, b) for b in BUDGETS}
        low = min(v[512] for v in by_conversation.values())
        high = max(v[512] for v in by_conversation.values())
        cells = "".join(f"{table[name][b]:>8.1%}" for b in BUDGETS)
        print(f"{name:<32}{cells}{f'{low:.0%}-{high:.0%}':>16}")
    ours = per["ctxengine default"]
    for peer in ("relevance only: BM25", "relevance only: MiniLM cosine"):
        wins = [sum(ours[c][b] > per[peer][c][b] for c in ours) for b in BUDGETS]
        print(
            f"default beats {peer[16:]} on "
            + ", ".join(f"{w}/{len(ours)} conversations at B={b}" for w, b in zip(wins, BUDGETS))
        )
    if args.loo and len(replays) > 1:
        print()
        print("\n".join(leave_one_out(replays, counts, per["relevance only: BM25"])))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
