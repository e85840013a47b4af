"""Cross-encoder re-ranking: a model that reads query and document together.

More accurate than comparing two separately made vectors, and much slower (one forward
pass per candidate), so it re-ranks a short candidate list. No PyPI package ships
cross-encoder weights, so the caller points at a local model directory (for example one
saved with ``CrossEncoder(...).save(path)``); nothing is ever fetched from a hub.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._validation import check_finite, check_positive_int
from ..errors import ConfigurationError, DependencyMissingError, ModelNotFoundError
from ..scoring import minmax
from ..types import ScoredDocument
from .base import BaseReranker, base_scores


class CrossEncoderReranker(BaseReranker):
    """Score each (query, document) pair with a sentence-transformers ``CrossEncoder``.

    ``stage_scores["cross_encoder_model"]`` holds the model's score (after the model's own
    activation, e.g. a sigmoid for one-label rankers). With ``blend=1`` that score is the
    final one (``"cross-encoder"``); with ``blend<1`` the final score is
    ``blend * ce_norm + (1 - blend) * base_norm``, both min-max normalised within the
    candidates so that logits and retrieval scores of any scale can be mixed.
    """

    name = "cross-encoder"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None,
        *,
        batch_size: int = 32,
        max_length: int = 512,
        blend: float = 1.0,
    ) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.max_length = check_positive_int(max_length, "max_length")
        self.blend = check_finite(blend, "blend", low=0.0, high=1.0)
        if model_path is None:
            raise ModelNotFoundError(
                "CrossEncoderReranker needs a local cross-encoder model directory "
                "(no PyPI package ships one and nothing is fetched from a hub); save one "
                "with CrossEncoder(...).save(path) on a machine with access, then pass the path"
            )
        if not isinstance(model_path, (str, os.PathLike)):
            raise ConfigurationError(f"model_path must be a path, got {type(model_path).__name__}")
        path = Path(model_path)
        if not path.is_dir():
            raise ModelNotFoundError(
                f"no cross-encoder model directory at {str(path)!r}; ctxengine loads "
                "models from local paths only"
            )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{str(path)!r} holds no model (config.json is missing)")
        self.model_path = path
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise DependencyMissingError(
                "sentence-transformers is needed for cross-encoder re-ranking: "
                "from the ctxengine clone, pip install -e '.[embeddings]' (the ctxengine[embeddings] extra)"
            ) from exc
        try:
            self._model = CrossEncoder(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"could not load a cross-encoder from {str(path)!r}: {exc}"
            ) from exc
        # Longer than the model's position table would crash inside torch; cap it.
        limits = [self.max_length]
        positions = getattr(self._model.config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            limits.append(positions)
        self._model.max_seq_length = min(limits)
        self._lock = threading.Lock()

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The model's score for each (query, text) pair."""
        if not texts:
            return np.zeros(0, dtype=np.float64)
        with self._lock:  # one forward at a time; torch already uses every core
            raw = self._model.predict(
                [(query, text) for text in texts],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        values = np.asarray(raw, dtype=np.float64)
        if values.ndim != 1:
            raise ConfigurationError(
                f"{str(self.model_path)!r} returns {values.shape[-1]} scores per pair; a "
                "re-ranker needs a one-label model (num_labels=1)"
            )
        return values

    def _scores(
        self, query: str, items: list[ScoredDocument]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        model_scores = self.scores(query, [item.document.text for item in items])
        if self.blend == 1.0:
            final = model_scores
        else:
            final = self.blend * minmax(model_scores) + (1.0 - self.blend) * base_scores(items)
        return final, {"cross_encoder_model": model_scores}

    def __repr__(self) -> str:
        return f"CrossEncoderReranker({str(self.model_path)!r}, blend={self.blend})"
