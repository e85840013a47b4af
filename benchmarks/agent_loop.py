"""Agent loop: every model call of a tool-using agent, under one token budget.

A scripted model replays a fixed tool-call plan, so every system sees the same trace:

* LoCoMo (dev conversations): one thread per conversation, questions asked one after the
  other; for each, the model calls ``read_session(n)`` for the session(s) holding the
  question's evidence and two other sessions (in a seeded random order), then answers.
  A tool result is a whole session ("Speaker: text" lines). Evidence kept: the share of
  the question's evidence turns present whole in the input of the answering call.
* SciFact (train claims with rationales): threads of three claims; for each, the model
  calls ``search(query)`` three times (the claim, and two other claims, in a seeded
  order); a search returns the queried claim's cited abstracts and one other abstract.
  Evidence kept: the share of the claim's rationale sentences present in the input of
  the answering call.

Input tokens are counted for every model call with :func:`ctxengine.agent.count_request`
(cl100k_base; system prompt, messages, tool-call arguments and the bound tools' schemas).

Systems, all at the same budget B (the peers' triggers are B less the system prompt and
the tool schemas, which they do not count, so their message lists aim at the same total):

* no middleware;
* LangChain ``ContextEditingMiddleware(ClearToolUsesEdit(trigger))``, default ``keep=3``,
  and with ``keep=1``;
* ``trim_messages`` (strategy "last", starting on a human message) in a
  ``@wrap_model_call`` middleware;
* ``SummarizationMiddleware`` with a deterministic summariser (a fake model that always
  answers one fixed sentence): this measures its budget mechanics (when it fires, what
  it keeps), not the quality of an LLM's summary; evidence only in summarised messages
  counts as lost, which an LLM summary might partly keep;
* LlamaIndex ``FunctionAgent`` with ``Memory.from_defaults(token_limit=B)`` (the same
  scripted plan through ``MockFunctionCallingLLM``);
* ctxengine ``ContextEngineMiddleware`` (engine without documents, default compressor),
  and for LlamaIndex ``ContextEngineLLM`` + ``ContextEngineChatMemory`` on the same engine.

    python -m benchmarks.agent_loop [--quick] [--budget 2000] [--data DIR]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the repository importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

import argparse
import asyncio
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ROOT
from .data import data_root, load_locomo, load_scifact_claims, load_scifact_sentences

SYSTEM = "Answer the user's question from the tool outputs. Be brief."


@dataclass
class Question:
    text: str
    calls: list[tuple[str, dict[str, Any]]]  # one tool call per step, in order
    evidence: list[str]


@dataclass
class Task:
    name: str
    tool_name: str
    tool_doc: str
    tool: Callable[[Any], str]
    threads: list[list[Question]]
    budget: int


@dataclass
class Run:
    system: str
    tokens: list[int] = field(default_factory=list)
    evidence: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --- tasks ------------------------------------------------------------------------------


def locomo_task(
    root: Path, conversations: int, per_thread: int, budget: int, rng: random.Random
) -> Task:
    sessions: dict[str, str] = {}
    threads = []
    for conv in load_locomo(root / "locomo" / "locomo_dev5.json")[:conversations]:
        by_session: dict[int, list[Any]] = {}
        for turn in conv.turns:
            by_session.setdefault(turn.session, []).append(turn)
        for number, turns in by_session.items():
            lines = [t.document_text for t in turns]
            sessions[f"{conv.sample_id}:{number}"] = f"Session {number}\n" + "\n".join(lines)
        turn_of = {t.dia_id: t for t in conv.turns}
        chosen = []
        for q in conv.answerable():
            held = sorted({turn_of[e].session for e in q.evidence if e in turn_of})
            if 1 <= len(held) <= 2:
                chosen.append((q, held))
        rng.shuffle(chosen)
        thread = []
        for q, held in chosen[:per_thread]:
            others = rng.sample([n for n in by_session if n not in held], 2)
            order = [*held, *others]
            rng.shuffle(order)
            calls = [("read_session", {"n": f"{conv.sample_id}:{n}"}) for n in order]
            evidence = [turn_of[e].document_text for e in q.evidence if e in turn_of]
            thread.append(Question(q.question, calls, evidence))
        threads.append(thread)
    return Task(
        "LoCoMo",
        "read_session",
        "Read one whole session of the conversation, by its id.",
        lambda n: sessions.get(str(n), "no such session"),
        threads,
        budget,
    )


def scifact_task(root: Path, claims: int, budget: int, rng: random.Random) -> Task:
    corpus = load_scifact_sentences(root / "scifact")
    usable = [
        c
        for c in load_scifact_claims(root / "scifact")
        if c.evidence and all(d in corpus for d in c.evidence)
    ]
    rng.shuffle(usable)
    usable = usable[: max(claims, 3)]
    ids = sorted(corpus)

    def abstract(doc_id: str) -> str:
        title, sentences = corpus[doc_id]
        return f"[{doc_id}] {title}\n" + " ".join(sentences)

    results: dict[str, str] = {}
    for claim in usable:
        docs = list(claim.evidence) + [rng.choice(ids)]
        results[claim.claim] = "\n\n".join(abstract(d) for d in docs)
    threads = []
    for start in range(0, len(usable), 3):
        thread = []
        for claim in usable[start : start + 3]:
            others = rng.sample([c.claim for c in usable if c is not claim], 2)
            order = [claim.claim, *others]
            rng.shuffle(order)
            evidence = [
                corpus[d][1][i]
                for d, idx in claim.evidence.items()
                for i in idx
                if i < len(corpus[d][1])
            ]
            thread.append(
                Question(
                    f"Is this claim supported? {claim.claim}",
                    [("search", {"query": q}) for q in order],
                    evidence,
                )
            )
        threads.append(thread)
    return Task(
        "SciFact",
        "search",
        "Search the literature; returns matching abstracts.",
        lambda query: results.get(str(query), "no results"),
        threads,
        budget,
    )


# --- LangChain systems ----------------------------------------------------------------------


def langchain_runs(task: Task, systems: Sequence[str], counter: Any) -> list[Run]:
    from langchain.agents import create_agent
    from langchain.agents.middleware import (
        ClearToolUsesEdit,
        ContextEditingMiddleware,
        SummarizationMiddleware,
        wrap_model_call,
    )
    from langchain_core.language_models.fake_chat_models import (
        FakeListChatModel,
        GenericFakeChatModel,
    )
    from langchain_core.messages import AIMessage, trim_messages
    from langchain_core.tools import StructuredTool
    from langgraph.checkpoint.memory import InMemorySaver
    from pydantic import Field

    from ctxengine import ContextEngine
    from ctxengine.agent import count_messages, count_tools
    from ctxengine.types import Document, ScoredDocument
    from langchain_ctxengine import ContextEngineMiddleware
    from langchain_ctxengine._agent import to_agent_message, tool_schemas

    class Scripted(GenericFakeChatModel):
        received: list[tuple[list[Any], list[Any]]] = Field(default_factory=list, exclude=True)
        bound: list[Any] = Field(default_factory=list, exclude=True)

        def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            self.received.append((list(messages), list(self.bound)))
            return super()._generate(messages, *args, **kwargs)

        def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Scripted:
            self.bound = list(tools)
            return self

    def fn(**kwargs: Any) -> str:
        return task.tool(next(iter(kwargs.values())))

    arg = "n" if task.tool_name == "read_session" else "query"
    namespace: dict[str, Any] = {"fn": fn}
    exec(f"def tool_fn({arg}: str) -> str:\n    return fn({arg}={arg})", namespace)  # noqa: S102
    tool = StructuredTool.from_function(
        namespace["tool_fn"], name=task.tool_name, description=task.tool_doc
    )

    def count(messages: Sequence[Any]) -> int:
        return count_messages([to_agent_message(m) for m in messages], counter)

    fixed = counter.count(SYSTEM) + 4 + count_tools(tool_schemas([tool]), counter)
    room = task.budget - fixed

    @wrap_model_call
    def trimmed(request: Any, handler: Any) -> Any:
        kept = trim_messages(
            request.messages,
            max_tokens=room,
            token_counter=count,
            strategy="last",
            start_on="human",
            allow_partial=False,
        )
        return handler(request.override(messages=kept))

    def middleware(system: str) -> list[Any]:
        if system == "no middleware":
            return []
        if system.startswith("ClearToolUsesEdit"):
            keep = 1 if "keep=1" in system else 3
            return [
                ContextEditingMiddleware(
                    edits=[ClearToolUsesEdit(trigger=room, keep=keep)], token_counter=count
                )
            ]
        if system == "trim_messages":
            return [trimmed]
        if system == "SummarizationMiddleware":
            summariser = FakeListChatModel(responses=["Earlier, tools were called and read."])
            return [
                SummarizationMiddleware(
                    summariser,
                    trigger=("tokens", room),
                    keep=("tokens", room // 2),
                    token_counter=count,
                )
            ]
        engine = ContextEngine.from_retriever(None, token_budget=task.budget, system_prompt="")
        # Load the compressor's model before the clock starts (a one-off, not a per-call cost).
        engine.compressor.compress("warm up", [ScoredDocument(Document("One. Two."), 1.0)], 8)
        return [
            ContextEngineMiddleware(engine, list_earlier=3 if "list_earlier=3" in system else 0)
        ]

    runs = []
    for system in systems:
        run = Run(system)
        plan: list[AIMessage] = []
        answers: list[int] = []  # index of each answering call
        for t, thread in enumerate(task.threads):
            for q, question in enumerate(thread):
                for s, (name, args) in enumerate(question.calls):
                    plan.append(
                        AIMessage(
                            "",
                            tool_calls=[
                                {
                                    "name": name,
                                    "args": args,
                                    "id": f"c{t}-{q}-{s}",
                                    "type": "tool_call",
                                }
                            ],
                        )
                    )
                plan.append(AIMessage(f"Answer {t}-{q}."))
                answers.append(len(plan) - 1)
        model = Scripted(messages=iter(plan))
        chosen = [middleware(system) for _ in task.threads]
        started = time.perf_counter()
        for t, thread in enumerate(task.threads):
            agent = create_agent(
                model,
                tools=[tool],
                system_prompt=SYSTEM,
                middleware=chosen[t],
                checkpointer=InMemorySaver(),
            )
            for question in thread:
                agent.invoke(
                    {"messages": [{"role": "user", "content": question.text}]},
                    {"configurable": {"thread_id": f"{task.name}-{t}"}},
                )
        run.seconds = time.perf_counter() - started
        evidence = [q.evidence for thread in task.threads for q in thread]
        for messages, bound in model.received:
            system_text = str(messages[0].text) if messages and messages[0].type == "system" else ""
            rest = messages[1:] if system_text else messages
            run.tokens.append(
                counter.count(system_text)
                + 4 * bool(system_text)
                + count(rest)
                + count_tools(tool_schemas(bound), counter)
            )
        for index, gold in zip(answers, evidence):
            run.evidence.append(
                _kept(gold, " ".join(str(m.text) for m in model.received[index][0]))
            )
        runs.append(run)
    return runs


def _kept(gold: Sequence[str], text: str) -> float:
    seen = _norm(text)
    return sum(_norm(g) in seen for g in gold) / len(gold) if gold else 0.0


# --- LlamaIndex -------------------------------------------------------------------------


def llamaindex_run(task: Task, counter: Any, *, ctxengine: bool = False) -> Run:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.memory import Memory
    from llama_index.core.tools import FunctionTool

    from ctxengine import ContextEngine
    from ctxengine.agent import count_request
    from ctxengine.types import Document, ScoredDocument
    from llamaindex_ctxengine import ContextEngineChatMemory, ContextEngineLLM
    from llamaindex_ctxengine._agent import to_agent_message, tool_schemas

    received: list[tuple[list[ChatMessage], list[Any]]] = []
    plan: list[ChatMessage] = []
    answers: list[int] = []
    for t, thread in enumerate(task.threads):
        for q, question in enumerate(thread):
            for s, (name, args) in enumerate(question.calls):
                block = ToolCallBlock(
                    tool_call_id=f"c{t}-{q}-{s}", tool_name=name, tool_kwargs=args
                )
                plan.append(ChatMessage(role="assistant", blocks=[block]))
            plan.append(ChatMessage(role="assistant", content=f"Answer {t}-{q}."))
            answers.append(len(plan) - 1)
    script = iter(plan)

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        received.append((list(messages), list(kwargs.get("tools") or [])))
        return next(script)

    arg = "n" if task.tool_name == "read_session" else "query"
    namespace: dict[str, Any] = {"fn": task.tool}
    exec(f"def tool_fn({arg}: str) -> str:\n    return fn({arg})", namespace)  # noqa: S102
    tool = FunctionTool.from_defaults(
        namespace["tool_fn"], name=task.tool_name, description=task.tool_doc
    )
    run = Run("LlamaIndex + ctxengine" if ctxengine else "LlamaIndex Memory defaults")
    setups = []
    for t in range(len(task.threads)):
        session = f"{task.name}-{t}"
        llm: Any = MockFunctionCallingLLM(response_generator=respond)
        if ctxengine:
            engine = ContextEngine.from_retriever(None, token_budget=task.budget, system_prompt="")
            engine.compressor.compress("warm up", [ScoredDocument(Document("One. Two."), 1.0)], 8)
            llm = ContextEngineLLM(llm, engine, session_id=session)
            memory: Any = ContextEngineChatMemory(engine, session_id=session)
        else:
            memory = Memory.from_defaults(session_id=session, token_limit=task.budget)
        setups.append((llm, memory))

    async def go() -> None:
        for (llm, memory), thread in zip(setups, task.threads):
            agent = FunctionAgent(tools=[tool], llm=llm, system_prompt=SYSTEM)
            for question in thread:
                await agent.run(question.text, memory=memory)

    started = time.perf_counter()
    asyncio.run(go())
    run.seconds = time.perf_counter() - started
    for messages, tools in received:
        items = [to_agent_message(m) for m in messages]
        system = "\n\n".join(i.text for i in items if i.role == "system")
        rest = [i for i in items if i.role != "system"]
        run.tokens.append(count_request(system, rest, tool_schemas(tools), counter))
    evidence = [q.evidence for thread in task.threads for q in thread]
    for index, gold in zip(answers, evidence):
        run.evidence.append(
            _kept(gold, " ".join(to_agent_message(m).text for m in received[index][0]))
        )
    return run


# --- report ---------------------------------------------------------------------------------


SYSTEMS = [
    "no middleware",
    "ClearToolUsesEdit (keep=3)",
    "ClearToolUsesEdit (keep=1)",
    "trim_messages",
    "SummarizationMiddleware",
    "ctxengine, list_earlier=3",
    "ctxengine",
]


def rows(task: Task, runs: Sequence[Run]) -> list[list[Any]]:
    out = []
    for run in runs:
        tokens = sorted(run.tokens)
        p95 = tokens[min(len(tokens) - 1, round(0.95 * (len(tokens) - 1)))]
        over = sum(t > task.budget for t in tokens)
        out.append(
            [
                task.name,
                run.system,
                len(tokens),
                int(statistics.median(tokens)),
                p95,
                tokens[-1],
                f"{over} ({over / len(tokens):.0%})",
                f"{statistics.mean(run.evidence):.1%}",
                f"{1000 * run.seconds / len(tokens):.1f}",
            ]
        )
    return out


HEADER = [
    "task",
    "system",
    "calls",
    "median in",
    "p95 in",
    "peak in",
    "over budget",
    "evidence kept",
    "ms/call",
]


def plot(all_rows: Sequence[Sequence[Any]], path: Path, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r[0] for r in all_rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, name in zip(axes[0], tasks):
        chosen = [r for r in all_rows if r[0] == name]
        within = [100 - float(r[6].split("(")[1].rstrip("%)")) for r in chosen]
        kept = [float(r[7].rstrip("%")) for r in chosen]
        x = range(len(chosen))
        ax.bar([i - 0.2 for i in x], within, 0.4, label="calls within budget %")
        ax.bar([i + 0.2 for i in x], kept, 0.4, label="evidence kept %")
        ax.set_xticks(list(x), [r[1] for r in chosen], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{name}, B={budget}")
        ax.set_ylim(0, 105)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small slice (CI smoke)")
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--data", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "agent_loop.png"))
    args = parser.parse_args(argv)
    root = data_root(args.data)
    if root is None:
        raise SystemExit("no data folder: pass --data or set CTXENGINE_DATA")
    from ctxengine.tokens import get_token_counter

    counter = get_token_counter("cl100k_base")
    rng = random.Random(args.seed)
    convs, per_thread, claims = (1, 3, 6) if args.quick else (5, 8, 30)
    tasks = [
        locomo_task(root, convs, per_thread, args.budget, rng),
        scifact_task(root, claims, args.budget, rng),
    ]
    all_rows: list[list[Any]] = []
    started = time.perf_counter()
    for task in tasks:
        runs = langchain_runs(task, SYSTEMS, counter)
        runs.insert(len(runs) - 2, llamaindex_run(task, counter))  # before the ctxengine rows
        runs.append(llamaindex_run(task, counter, ctxengine=True))
        all_rows += rows(task, runs)
    widths = [max(len(str(r[i])) for r in [HEADER, *all_rows]) for i in range(len(HEADER))]
    for row in [HEADER, *all_rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    questions = sum(len(th) for t in tasks for th in t.threads)
    print(
        f"B={args.budget} tokens (cl100k_base, count_request), {questions} questions, "
        f"{time.perf_counter() - started:.0f} s"
    )
    if args.plot and not args.quick:
        plot(all_rows, Path(args.plot), args.budget)
        print(f"plot: {args.plot}")
    return [dict(zip(HEADER, row)) for row in all_rows]


if __name__ == "__main__":
    main()
