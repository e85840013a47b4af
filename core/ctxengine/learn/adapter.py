"""A query-side adapter for the dense signal: the encoder learns what the application
means by "relevant" without re-embedding anything.

``q' = normalize(q + B (A q))``: a low-rank residual map (``A``: rank x d, ``B``: d x
rank, ``B`` starting at zero so an untrained adapter is the identity) applied to the query
vector only. Corpus vectors (documents, their sentence windows, memory turns) stay as they
are, so training takes seconds and the index needs no new version.

Training is contrastive (InfoNCE, torch on CPU): for each (query, relevant item) pair the
relevant item must out-score the other pairs' relevant items in the batch (in-batch
negatives) and the query's *hard negatives*, the non-relevant items the engine's own first
stage ranked highest. An item is scored as the retriever scores it: the best cosine over
its vectors (whole text and sentence windows). A slice of the training queries is held out
(``validation``) and the epoch that ranks it best is kept, so a small or noisy training
set stops early instead of drifting from the encoder.

Saved as JSON (numbers only, never pickled) inside the index directory, checksummed by
its manifest (:mod:`ctxengine.persist`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import read_json, write_json
from .._validation import check_finite, check_format, check_positive_int
from ..errors import ConfigurationError, IndexFormatError, InvalidInputError

FORMAT = "ctxengine-query-adapter"
FORMAT_VERSION = 1
Items = Sequence[np.ndarray]  # one (m, d) array per item: its whole-text and window vectors


class QueryAdapter:
    """Low-rank residual map on query vectors (see the module docstring).

    Parameters
    ----------
    rank:
        Rank of the residual ``B A`` (``2 * rank * d`` numbers).
    epochs:
        Passes over the training pairs (the best epoch on the validation slice is kept).
    temperature:
        Softmax temperature of the contrastive loss (cosines are divided by it).
    learning_rate, weight_decay:
        AdamW's. The decay pulls the residual towards zero (the encoder as it is).
    batch_size:
        Pairs per step; the other pairs of a batch are its in-batch negatives.
    validation:
        Share of the training queries held out to choose the epoch (none below 20 queries:
        then every epoch is trained and the last is kept).
    random_state:
        Seeds initialisation, shuffling and the validation split: training is deterministic.
    """

    def __init__(
        self,
        *,
        rank: int = 32,
        epochs: int = 20,
        temperature: float = 0.05,
        learning_rate: float = 2e-3,
        weight_decay: float = 0.01,
        batch_size: int = 64,
        validation: float = 0.15,
        random_state: int = 0,
    ) -> None:
        self.rank = check_positive_int(rank, "rank")
        self.epochs = check_positive_int(epochs, "epochs")
        self.temperature = check_finite(temperature, "temperature", low=0.0, low_inclusive=False)
        self.learning_rate = check_finite(
            learning_rate, "learning_rate", low=0.0, low_inclusive=False
        )
        self.weight_decay = check_finite(weight_decay, "weight_decay", low=0.0)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.validation = check_finite(validation, "validation", low=0.0, high=0.5)
        self.random_state = check_positive_int(random_state, "random_state", allow_zero=True)
        self.down = np.zeros((0, 0), dtype=np.float32)  # A: rank x d
        self.up = np.zeros((0, 0), dtype=np.float32)  # B: d x rank
        self.trained: dict[str, Any] = {}

    def get_params(self) -> dict[str, Any]:
        """The constructor's settings (scikit-learn's convention): ``QueryAdapter(**p)`` is
        an untrained adapter that trains the same way (stacking trains one per fold)."""
        names = (
            *("rank", "epochs", "temperature", "learning_rate", "weight_decay"),
            *("batch_size", "validation", "random_state"),
        )
        return {name: getattr(self, name) for name in names}

    @property
    def is_fitted(self) -> bool:
        return self.down.size > 0

    @property
    def dimension(self) -> int:
        return int(self.down.shape[1]) if self.is_fitted else 0

    # --- scoring -----------------------------------------------------------------------

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Adapted, unit-length query vector(s): ``(d,)`` or ``(n, d)`` in, same shape out."""
        if not self.is_fitted:
            raise ConfigurationError("this adapter is not trained: call fit() or load() first")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.dimension or vectors.ndim not in (1, 2):
            raise InvalidInputError(
                f"expected vectors of dimension {self.dimension}, got shape {vectors.shape}"
            )
        out = vectors + (vectors @ self.down.T) @ self.up.T
        norm = np.linalg.norm(out, axis=-1, keepdims=True)
        return (out / np.maximum(norm, 1e-12)).astype(np.float32, copy=False)

    __call__ = transform

    # --- training ----------------------------------------------------------------------

    def fit(
        self, queries: np.ndarray, positives: Sequence[Items], negatives: Sequence[Items]
    ) -> QueryAdapter:
        """Train on query vectors ``(n, d)``; ``positives[i]`` are the relevant items of
        query ``i`` and ``negatives[i]`` its hard negatives, each item an ``(m, d)`` array
        of its vectors (m >= 1). Queries without a positive are skipped; if none is left,
        :class:`~ctxengine.errors.InvalidInputError` and the adapter is unchanged."""
        import torch

        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or len(queries) != len(positives) or len(queries) != len(negatives):
            raise InvalidInputError(
                "queries, positives and negatives must have one entry per query"
            )
        keep = [i for i in range(len(queries)) if len(positives[i])]
        if not keep:
            raise InvalidInputError("no training query has a relevant item")
        d = queries.shape[1]
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(keep)
        held = round(self.validation * len(order)) if len(order) >= 20 else 0
        valid, train = order[:held], order[held:]
        pairs = np.array([(q, j) for q in train for j in range(len(positives[q]))], dtype=np.intp)

        # Every item's vectors in one matrix, once: a batch gathers rows by index.
        item_ids: dict[tuple[int, int, int], int] = {}  # (query, 0 pos / 1 neg, j) -> item
        for q in keep:
            for j in range(len(positives[q])):
                item_ids[(q, 0, j)] = len(item_ids)
            for j in range(len(negatives[q])):
                item_ids[(q, 1, j)] = len(item_ids)
        stacked = [positives[q][j] if kind == 0 else negatives[q][j] for q, kind, j in item_ids]
        sizes = np.array([len(np.atleast_2d(item)) for item in stacked])
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        matrix = torch.from_numpy(_stack(stacked)[0])

        torch.manual_seed(self.random_state)
        down = torch.nn.Parameter(torch.randn(self.rank, d, dtype=torch.float32) / math.sqrt(d))
        up = torch.nn.Parameter(torch.zeros(d, self.rank, dtype=torch.float32))
        optimizer = torch.optim.AdamW(
            [down, up], lr=self.learning_rate, weight_decay=self.weight_decay
        )
        all_q = torch.from_numpy(queries)

        def adapt(q: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(q + (q @ down.T) @ up.T, dim=-1)

        def item_scores(q: torch.Tensor, items: list[int]) -> torch.Tensor:
            """(len(q), len(items)): the best cosine over each item's vectors."""
            counts = sizes[items]
            owner = np.repeat(np.arange(len(items)), counts)
            rows = (
                starts[items][owner]
                + np.arange(len(owner))
                - np.repeat(np.cumsum(counts) - counts, counts)
            )
            owners = torch.from_numpy(owner)
            sims = q @ matrix[torch.from_numpy(rows)].T  # (nq, rows)
            out = torch.full((len(q), len(items)), -4.0)
            return out.scatter_reduce(
                1, owners.expand(len(q), -1), sims, reduce="amax", include_self=True
            )

        def items_of(q: int, kind: int, count: int) -> list[int]:
            return [item_ids[(q, kind, j)] for j in range(count)]

        def validation_score() -> float:
            """Mean reciprocal rank of the best positive among positives + hard negatives."""
            if not len(valid):
                return 0.0
            with torch.no_grad():
                adapted = adapt(all_q[torch.from_numpy(valid)])
                total = 0.0
                for row, q in enumerate(valid):
                    n_pos = len(positives[q])
                    items = items_of(q, 0, n_pos) + items_of(q, 1, len(negatives[q]))
                    s = item_scores(adapted[row : row + 1], items)[0].numpy()
                    total += 1.0 / (1 + int((s[n_pos:] > s[:n_pos].max()).sum()))
                return total / len(valid)

        best_score = validation_score()  # epoch 0: the encoder as it is
        best = (down.detach().clone(), torch.zeros_like(up))
        best_epoch, losses = 0, []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # deterministic and polite on a shared machine
        try:
            for epoch in range(1, self.epochs + 1):
                shuffled = pairs[rng.permutation(len(pairs))]
                epoch_loss = 0.0
                for start in range(0, len(shuffled), self.batch_size):
                    batch = shuffled[start : start + self.batch_size]
                    adapted_batch = adapt(all_q[batch[:, 0]])
                    own = [item_ids[(a, 0, b)] for a, b in batch.tolist()]
                    hard = [
                        i
                        for a in dict.fromkeys(batch[:, 0].tolist())
                        for i in items_of(a, 1, len(negatives[a]))
                    ]
                    logits = item_scores(adapted_batch, own + hard) / self.temperature
                    # another pair of the same query is not a negative
                    same = torch.from_numpy(batch[:, 0][:, None] == batch[:, 0][None, :])
                    mask = same & ~torch.eye(len(batch), dtype=torch.bool)
                    logits[:, : len(batch)] = logits[:, : len(batch)].masked_fill(mask, -1e4)
                    loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    epoch_loss += float(loss.detach()) * len(batch)
                losses.append(epoch_loss / len(pairs))
                score = validation_score()
                if not len(valid) or score > best_score:
                    best_score, best_epoch = score, epoch
                    best = (down.detach().clone(), up.detach().clone())
        finally:
            torch.set_num_threads(threads)
        self.down, self.up = best[0].numpy().astype(np.float32), best[1].numpy().astype(np.float32)
        self.trained = {
            "queries": len(keep),
            "pairs": len(pairs),
            "validation_queries": int(held),
            "epoch": best_epoch,
            "validation_mrr": round(best_score, 6),
            "loss": [round(x, 6) for x in losses],
        }
        return self

    # --- persistence -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if not self.is_fitted:
            raise ConfigurationError("an untrained adapter cannot be saved")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "rank": self.rank,
            "dimension": self.dimension,
            "down": self.down.tolist(),
            "up": self.up.tolist(),
            "trained": dict(self.trained),
        }

    @classmethod
    def from_dict(cls, data: Any) -> QueryAdapter:
        """Rebuild from :meth:`to_dict` output, checking every field."""
        data = check_format(data, FORMAT, FORMAT_VERSION, "query adapter")
        rank, dimension = data.get("rank"), data.get("dimension")
        if not isinstance(rank, int) or not _positive_int(rank) or not _positive_int(dimension):
            raise IndexFormatError("rank and dimension must be positive integers")
        try:
            down = np.array(data.get("down"), dtype=np.float32)
            up = np.array(data.get("up"), dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise IndexFormatError(f"adapter weights are not numbers: {exc}") from exc
        if down.shape != (rank, dimension) or up.shape != (dimension, rank):
            raise IndexFormatError(
                f"adapter weights must be {rank}x{dimension} and {dimension}x{rank}"
            )
        if not (np.isfinite(down).all() and np.isfinite(up).all()):
            raise IndexFormatError("adapter weights must be finite")
        adapter = cls(rank=rank)
        adapter.down, adapter.up = down, up
        trained = data.get("trained")
        adapter.trained = dict(trained) if isinstance(trained, Mapping) else {}
        return adapter

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the adapter as JSON to ``path`` (written aside, then renamed into place; ``path``
        must be new or an earlier save of the same kind: anything else is an
        :class:`~ctxengine.errors.IndexFormatError` and is left as it was)."""
        return write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QueryAdapter:
        data = read_json(Path(path))
        return cls.from_dict(data)

    def describe(self) -> str:
        """One line for a packet's notes: rank, training size and the epoch kept."""
        if not self.is_fitted:
            return "an untrained QueryAdapter"
        return (
            f"QueryAdapter format v{FORMAT_VERSION}, rank {self.rank}, trained on "
            f"{self.trained.get('queries', '?')} queries (epoch {self.trained.get('epoch', '?')} "
            f"kept by validation)"
        )

    def __repr__(self) -> str:
        state = (
            f"d={self.dimension}, trained on {self.trained.get('queries')} queries"
            if self.is_fitted
            else "untrained"
        )
        return f"QueryAdapter(rank={self.rank}, {state})"


def _stack(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every item's vectors in one matrix, and which item each row belongs to."""
    vectors = np.concatenate(
        [np.asarray(item, dtype=np.float32).reshape(-1, item.shape[-1]) for item in items]
    )
    owners = np.repeat(np.arange(len(items)), [len(np.atleast_2d(item)) for item in items])
    return vectors, owners


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


__all__ = ["FORMAT", "FORMAT_VERSION", "QueryAdapter"]
