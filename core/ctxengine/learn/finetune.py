"""Fine-tune the encoder on the application's labelled queries, when there are enough of them.

The :class:`~ctxengine.learn.QueryAdapter` moves query vectors only; fine-tuning changes the
model itself, so every document vector must be computed again. :func:`fine_tune_encoder`
does the whole cycle on an engine:

1. split the labelled queries with the :class:`~ctxengine.learn.OnlineLearner`'s holdout (a
   hash of the query text, so a query stays on its side as the data grows) and its minimum
   counts; with too few examples nothing is trained and nothing changes;
2. mine hard negatives with the engine's own first stage (the non-relevant documents it
   ranks highest for each training query) and train a copy of the engine's local
   sentence-transformers model with ``MultipleNegativesRankingLoss`` on (query, relevant
   document, hard negative) triples: CPU, seeded, bounded by steps and seconds, with the
   trainer's progress bar;
3. save the model to a local folder and re-embed the index with it as a *new version*
   (:meth:`HybridRetriever.reembedded <ctxengine.retrieval.HybridRetriever.reembedded>`)
   while the engine keeps serving the current vectors;
4. compare the current and the new version on the held-out queries (nDCG@10 of the first
   stage, per query) and switch (:meth:`~ctxengine.retrieval.HybridRetriever.use_vectors_of`,
   atomic) only when the learner's :class:`~ctxengine.learn.SwitchRule` says the new one
   really wins (a minimum margin and a paired bootstrap over the held-out queries), the
   rule the OnlineLearner replaces models by.

The fine-tuned folder loads through the same local-path code as any model
(:class:`~ctxengine.embeddings.SentenceTransformerEmbedder`); its identity (name and
checksum of its files) keys the embedding cache and is recorded in a saved index, so the
base model's vectors are never served for it and ``ContextEngine.load`` refuses an index
whose vectors came from another model.
"""

from __future__ import annotations

import importlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .._validation import check_finite, check_positive_int
from ..embeddings import CachedEmbedder, SentenceTransformerEmbedder
from ..errors import ConfigurationError, DependencyMissingError, InvalidInputError
from .online import OnlineLearner
from .switching import per_query_ndcg
from .training import RankingExample, coerce_examples

Triple = tuple[str, str, str]  # (query, relevant document text, hard negative text)


class EncoderFineTuner:
    """Trains a copy of a local sentence-transformers model on (query, relevant, hard
    negative) triples with ``MultipleNegativesRankingLoss`` (the other rows' documents are
    in-batch negatives), on CPU, within a step and time budget.

    Parameters
    ----------
    epochs:
        Passes over the triples (unless ``max_steps`` or ``max_seconds`` stops first).
    max_steps:
        Optimizer steps at most (``None``: as many as ``epochs`` take).
    max_seconds:
        Training stops after the step that crosses this many seconds (a time budget for
        a shared CPU; the run is then not reproducible step for step, a ``max_steps`` one is).
    batch_size:
        Triples per step.
    learning_rate, warmup_ratio:
        AdamW's, with linear warm-up over that share of the steps.
    hard_negatives:
        Training rows per relevant document, each with the next first-stage hard negative.
    candidates:
        How deep the first stage is read for hard negatives.
    max_seq_length:
        Word pieces read per text while training (``None``: the model's own limit).
    random_state:
        Seeds the trainer (initial shuffle, dropout): a ``max_steps`` run is deterministic.
    show_progress:
        The trainer's progress bar and a re-embedding bar.

    Examples
    --------
    >>> from ctxengine.learn import EncoderFineTuner
    >>> tuner = EncoderFineTuner(max_steps=200, max_seconds=600)
    >>> tuner.batch_size, tuner.max_seconds
    (16, 600.0)
    """

    def __init__(
        self,
        *,
        epochs: int = 1,
        max_steps: int | None = None,
        max_seconds: float = 900.0,
        batch_size: int = 16,
        learning_rate: float = 2e-5,
        warmup_ratio: float = 0.1,
        hard_negatives: int = 1,
        candidates: int = 30,
        max_seq_length: int | None = None,
        random_state: int = 0,
        show_progress: bool = True,
    ) -> None:
        self.epochs = check_positive_int(epochs, "epochs")
        self.max_steps = None if max_steps is None else check_positive_int(max_steps, "max_steps")
        self.max_seconds = check_finite(max_seconds, "max_seconds", low=0.0, low_inclusive=False)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if self.batch_size < 2:
            raise InvalidInputError("batch_size must be >= 2: the other rows are the negatives")
        self.learning_rate = check_finite(
            learning_rate, "learning_rate", low=0.0, low_inclusive=False
        )
        self.warmup_ratio = check_finite(warmup_ratio, "warmup_ratio", low=0.0, high=1.0)
        self.hard_negatives = check_positive_int(hard_negatives, "hard_negatives")
        self.candidates = check_positive_int(candidates, "candidates")
        self.max_seq_length = (
            None if max_seq_length is None else check_positive_int(max_seq_length, "max_seq_length")
        )
        self.random_state = check_positive_int(random_state, "random_state", allow_zero=True)
        if not isinstance(show_progress, bool):
            raise InvalidInputError("show_progress must be a bool")
        self.show_progress = show_progress

    def triples(self, examples: Sequence[RankingExample], retriever: Any) -> list[Triple]:
        """(query, relevant text, hard negative text) rows: each relevant document of each
        example, paired with the non-relevant documents ``retriever`` ranks highest."""
        rows: list[Triple] = []
        for example in examples:
            relevant = [i for i, gain in example.relevant.items() if gain > 0 and i in retriever]
            if not relevant:
                continue
            pool = retriever.retrieve(example.query, k=self.candidates)
            negatives = [d.document.text for d in pool if d.id not in example.relevant]
            if not negatives:
                continue
            for j, doc_id in enumerate(relevant):
                positive = retriever.get(doc_id).text
                for n in range(self.hard_negatives):
                    negative = negatives[(j * self.hard_negatives + n) % len(negatives)]
                    rows.append((example.query, positive, negative))
        return rows

    def fit(
        self, triples: Sequence[Triple], base: str | os.PathLike[str], output_dir: Path
    ) -> dict[str, Any]:
        """Train a copy of the model in folder ``base`` on ``triples``, save it to
        ``output_dir`` (new or empty); returns what was trained (steps, seconds, loss)."""
        trainer_classes = _trainer_classes()
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers import TrainerCallback

        if len(triples) < 2:
            raise InvalidInputError("fine-tuning needs at least 2 (query, document) pairs")
        arguments_class, trainer_class, loss_class, no_duplicates = trainer_classes
        from datasets import Dataset

        started = time.perf_counter()
        limit = self.max_seconds

        class TimeBudget(TrainerCallback):
            """Stops training after the step that crosses the time budget."""

            stopped = False

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                if time.perf_counter() - started >= limit:
                    control.should_training_stop = True
                    TimeBudget.stopped = True
                return control

        torch.manual_seed(self.random_state)
        model = SentenceTransformer(str(base), device="cpu", local_files_only=True)
        if self.max_seq_length is not None:
            model.max_seq_length = self.max_seq_length
        data = Dataset.from_dict(
            {
                "anchor": [t[0] for t in triples],
                "positive": [t[1] for t in triples],
                "negative": [t[2] for t in triples],
            }
        )
        steps = math.ceil(len(triples) / self.batch_size) * self.epochs
        if self.max_steps is not None:
            steps = min(steps, self.max_steps)
        # a fresh folder: a fixed ".name.trainer" was emptied afterwards even if it was a
        # folder of the user's
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(
            tempfile.mkdtemp(prefix=f".{output_dir.name}.trainer-", dir=output_dir.parent)
        )
        try:
            args = arguments_class(
                output_dir=str(scratch),
                num_train_epochs=self.epochs,
                max_steps=self.max_steps if self.max_steps is not None else -1,
                per_device_train_batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                # an int count: transformers 5 deprecates warmup_ratio, 4 reads no float steps
                warmup_steps=round(self.warmup_ratio * steps),
                seed=self.random_state,
                data_seed=self.random_state,
                # a query with two relevant documents must not be its own in-batch negative
                batch_sampler=no_duplicates,
                save_strategy="no",
                report_to="none",
                use_cpu=True,
                dataloader_num_workers=0,
                disable_tqdm=not self.show_progress,
                logging_strategy="steps",
                logging_steps=10,
            )
            trainer = trainer_class(
                model=model,
                args=args,
                train_dataset=data,
                loss=loss_class(model),
                callbacks=[TimeBudget()],
            )
            result = trainer.train()
        finally:
            _remove_scratch(scratch)
        seconds = time.perf_counter() - started
        # no model card: writing one may look the base model up on a hub, and we stay offline
        model.save(str(output_dir), create_model_card=False)
        return {
            "triples": len(triples),
            "steps": int(result.global_step),
            "seconds": round(seconds, 3),
            "loss": round(float(result.training_loss), 6),
            "stopped": "time budget" if TimeBudget.stopped else "completed",
            "random_state": self.random_state,
        }

    def __repr__(self) -> str:
        return (
            f"EncoderFineTuner(epochs={self.epochs}, max_steps={self.max_steps}, "
            f"max_seconds={self.max_seconds}, batch_size={self.batch_size})"
        )


def _trainer_classes() -> tuple[Any, Any, Any, Any]:
    """sentence-transformers' trainer, its arguments, the loss and the no-duplicates batch
    sampler (module paths moved in version 6; both are accepted)."""
    try:
        from sentence_transformers import (
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )

        try:
            losses = importlib.import_module("sentence_transformers.sentence_transformer.losses")
            samplers = importlib.import_module(
                "sentence_transformers.sentence_transformer.training_args"
            )
        except ImportError:  # before 6.0
            losses = importlib.import_module("sentence_transformers.losses")
            samplers = importlib.import_module("sentence_transformers.training_args")
        import accelerate  # noqa: F401  (the trainer needs it; say so here, not mid-run)
        import datasets  # noqa: F401
    except ImportError as exc:
        raise DependencyMissingError(
            "fine-tuning the encoder needs sentence-transformers' trainer: from the ctxengine "
            f"clone, pip install -e '.[finetune]' ({exc})"
        ) from exc
    return (
        SentenceTransformerTrainingArguments,
        SentenceTransformerTrainer,
        losses.MultipleNegativesRankingLoss,
        samplers.BatchSamplers.NO_DUPLICATES,
    )


def _remove_scratch(scratch: Path) -> None:
    """The trainer's own output folder, made for this run (``save_strategy="no"`` leaves
    it empty or with logs only)."""
    shutil.rmtree(scratch, ignore_errors=True)


def _check_output(output_dir: Any) -> Path:
    if not isinstance(output_dir, (str, os.PathLike)) or not str(output_dir).strip():
        raise InvalidInputError("output_dir must be a folder path")
    path = Path(output_dir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError(
            f"{path} exists and is not an empty folder; the fine-tuned model is written to a "
            "new or empty folder, never over files already there"
        )
    return path


def _local_model(retriever: Any) -> SentenceTransformerEmbedder:
    """The sentence-transformers model behind the retriever's embedder."""
    resolved = retriever._embedder()
    inner = resolved.embedder if isinstance(resolved, CachedEmbedder) else resolved
    if not isinstance(inner, SentenceTransformerEmbedder):
        raise ConfigurationError(
            f"only a local sentence-transformers model can be fine-tuned; this index embeds "
            f"with {resolved.name!r}"
        )
    return inner


def fine_tune_encoder(
    engine: Any,
    examples: Iterable[Any],
    output_dir: str | os.PathLike[str],
    *,
    tuner: EncoderFineTuner | None = None,
    learner: OnlineLearner | None = None,
) -> dict[str, Any]:
    """Fine-tune the engine's encoder on labelled queries; switch the index to it only if
    it ranks the held-out queries better. Returns the decision and both scores.

    ``examples``: :class:`~ctxengine.learn.RankingExample` (or their mappings, e.g.
    ``engine.feedback.examples()``); memory examples are ignored. ``output_dir``: a new or
    empty folder for the fine-tuned model (kept whatever the decision). ``learner``: whose
    holdout share and minimum counts split the examples and whose ``rule`` decides the
    switch (default: ``engine.online`` or an :class:`~ctxengine.learn.OnlineLearner` with
    its defaults). The report holds ``switched``, ``reason``, ``current`` and ``candidate``
    (held-out nDCG@k of the first stage before and after), ``support`` (the rule's
    bootstrap support), the counts, ``training`` (steps, seconds, loss) and
    ``reembed_seconds``. Without enough examples nothing is trained and nothing changes.
    """
    tuner = EncoderFineTuner() if tuner is None else tuner
    if not isinstance(tuner, EncoderFineTuner):
        raise InvalidInputError(f"tuner must be an EncoderFineTuner, got {type(tuner).__name__}")
    learner = learner or getattr(engine, "online", None) or OnlineLearner()
    if not isinstance(learner, OnlineLearner):
        raise InvalidInputError(f"learner must be an OnlineLearner, got {type(learner).__name__}")
    retriever = engine.retriever
    if retriever is None or not callable(getattr(retriever, "reembedded", None)):
        raise ConfigurationError("fine-tuning re-embeds the engine's own index: it has none")
    target = _check_output(output_dir)
    ranking, _ = coerce_examples(examples)
    ranking = [e for e in ranking if any(i in retriever for i in e.relevant)]
    train, held = learner.split(ranking)
    report: dict[str, Any] = {
        "switched": False,
        "train": len(train),
        "holdout": len(held),
        "model_path": None,
    }
    if not learner.enough(train, held):
        report["reason"] = f"{len(train)} training / {len(held)} holdout queries: too few"
        return report
    base = _local_model(retriever)
    triples = tuner.triples(train, retriever)
    if len(triples) < 2:
        report["reason"] = "the training queries give fewer than 2 (query, document) pairs"
        return report
    report["training"] = tuner.fit(triples, base.path, target)
    report["model_path"] = str(target)

    cache = getattr(retriever._embedder(), "cache_dir", None)
    candidate_embedder = CachedEmbedder(SentenceTransformerEmbedder(target), cache)
    started = time.perf_counter()
    candidate = retriever.reembedded(candidate_embedder, progress=_progress(tuner.show_progress))
    report["reembed_seconds"] = round(time.perf_counter() - started, 3)
    verdict = learner.rule.decide(
        per_query_ndcg(retriever, held, learner.k), per_query_ndcg(candidate, held, learner.k)
    )
    old, new = verdict.current, verdict.candidate
    report.update(
        current=round(old, 6), candidate=round(new, 6), support=verdict.support, k=learner.k
    )
    if verdict.switch:
        had_adapter = retriever.query_adapter is not None
        retriever.use_vectors_of(candidate)
        report["switched"] = True
        report["reason"] = (
            f"held-out nDCG@{learner.k} {new:.3f} > {old:.3f} of the encoder it replaced "
            f"({len(held)} held-out queries, trained on {len(train)}; {verdict.reason})"
        )
        if had_adapter:
            report["reason"] += "; the query adapter trained on the old vectors was removed"
    else:
        report["reason"] = (
            f"held-out nDCG@{learner.k} {new:.3f} vs {old:.3f} ({verdict.reason}): the current "
            "encoder stays"
        )
    return report


def _progress(show: bool) -> Any:
    """A re-embedding progress callback printing with rich (None when not shown)."""
    if not show:
        return None
    from rich.console import Console

    console = Console(stderr=True)
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last[0] >= 2.0:
            last[0] = now
            console.print(f"re-embedding the index: {done}/{total} documents")

    return report


__all__ = ["EncoderFineTuner", "fine_tune_encoder"]
