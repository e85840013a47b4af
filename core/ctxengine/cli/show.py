"""What the ``ctxengine`` command prints (rich renderables), kept apart from what it does.

Every string from the user goes through :func:`ctxengine.display.visible` (a document
holding ``ESC[2J`` must not clear the terminal it is printed on)."""

from __future__ import annotations

from ..display import visible


def console():  # imported lazily: ``ctxengine --help`` should be instant
    from rich.console import Console

    # Everything printed comes from the user (queries, documents, turns, paths): shown
    # literally, never read as markup ("[/i]") or emoji codes (":vampire:").
    return Console(markup=False, emoji=False, highlight=False)


def print_packet(console, packet, title: str) -> None:
    from rich.panel import Panel
    from rich.text import Text

    console.rule(Text(visible(title), style="bold"))
    console.print(Panel(Text(visible(packet.text)), title="packet.text", expand=True))
    for renderable in packet.renderables():
        console.print(renderable)


def side_by_side(console, packets, titles) -> None:
    from rich.columns import Columns
    from rich.table import Table
    from rich.text import Text

    tables = []
    for packet, title in zip(packets, titles):
        table = Table(title=Text(title), title_justify="left")
        table.add_column("slot")
        table.add_column("tokens", justify="right")
        for slot, tokens in packet.usage.items():
            table.add_row(slot, str(tokens))
        table.add_row("total", f"{packet.tokens_used} / {packet.token_budget}", style="bold")
        table.add_row("documents", Text(visible(", ".join(d.id for d in packet.documents))))
        table.add_row("memory turns", str(len(packet.memory_turns)))
        table.add_row("build ms", f"{packet.timings['total'] * 1000:.1f}")
        tables.append(table)
    console.rule(Text("turn 1 vs turn 2", style="bold"))
    console.print(Columns(tables))


def _kept(doc) -> str:
    """What compression kept, readable: "whole", or how many of the sentences."""
    from ..text import split_sentences

    if doc.kept is None:
        return "whole"
    total = len(split_sentences(doc.document.text))
    if len(doc.kept) >= total and all(span.sentence_index >= 0 for span in doc.kept):
        return f"whole ({total} sentences)"
    return f"{len(doc.kept)} of {total} sentences"


def documents_table(packet, title: str):
    from rich.table import Table
    from rich.text import Text

    hidden = {"alpha", "tag_importance"}  # inputs of a stage, not a stage's score
    stages: list[str] = []
    for doc in packet.documents:
        stages += [name for name in doc.stage_scores if name not in hidden and name not in stages]
    table = Table(title=title, title_justify="left", caption=_DOC_CAPTION, caption_justify="left")
    for column in ("#", "id", *stages, "kept", "tokens"):
        table.add_column(column, justify="left" if column in ("id", "kept") else "right")
    for rank, doc in enumerate(packet.documents, 1):
        cells = [f"{doc.stage_scores[s]:.2f}" if s in doc.stage_scores else "" for s in stages]
        table.add_row(str(rank), Text(visible(doc.id)), *cells, _kept(doc), str(doc.tokens or ""))
    return table


_DOC_CAPTION = (
    "bm25: raw BM25; dense: cosine of MiniLM vectors (unrelated texts score ~0.2); hybrid: "
    "0.65 x dense + 0.35 x bm25, each scaled 0-1 over this query's candidates (so the last "
    "candidate scores 0); tags, dedup: the re-ranking chain's stages, in order"
)


def memory_table(engine, query: str, session: str, packet, now: float):
    from rich.table import Table
    from rich.text import Text

    chosen = {turn.turn.id for turn in packet.memory_turns}
    scored = sorted(
        engine.memory.score(query, session_id=session), key=lambda s: (s.turn.timestamp, s.turn.seq)
    )
    table = Table(
        title="Memory: every stored turn, scored for this question (chronological)",
        title_justify="left",
        caption="effective = importance x recency x freshness + boost (40 x relevance to the "
        "question); recency halves every day; under 0.1 a turn is dropped. Columns: age, role, "
        "importance, recency, boost, effective, in packet, content",
        caption_justify="left",
    )
    for column, width in (
        ("age", 5),
        ("role", 9),
        ("importance", 5),
        ("recency", 7),
        ("boost", 5),
        ("effective", 5),
        ("in packet", 7),
    ):
        table.add_column(
            column,
            justify="left" if column in ("role", "in packet") else "right",
            no_wrap=True,
            min_width=width,
            overflow="ellipsis",
        )
    table.add_column("content", no_wrap=True, overflow="ellipsis", max_width=40)
    for item in scored:
        parts = item.components
        hours = (now - item.turn.timestamp) / 3600
        age = f"{hours / 24:.1f} d" if hours >= 24 else f"{hours:.1f} h"
        # styled Text, not markup: the console reads every string literally
        if item.turn.id in chosen:
            status = Text("yes", style="green")
        elif item.effective < engine.memory.drop_threshold:
            status = Text("dropped", style="red")
        else:
            status = Text("no room", style="yellow")
        table.add_row(
            age,
            Text(visible(item.role)),
            f"{parts.get('importance', 0):.2f}",
            f"{parts.get('recency', 0):.3f}",
            f"{parts.get('boost', 0):.2f}",
            f"{item.effective:.2f}",
            status,
            Text(visible(item.content)),
        )
    return table
