"""ONNX Runtime inference for a sentence-transformers encoder, exported from its local files.

:class:`~ctxengine.embeddings.SentenceTransformerEmbedder` with ``backend="onnx"`` or
``"onnx-int8"`` keeps its SentenceTransformer (tokenizer, pooling, normalisation, batching,
``output_value="token_embeddings"``) and swaps only the transformer's forward pass for an
ONNX Runtime session. The graph is exported once from the model directory with
``torch.onnx.export`` (int8: then ``onnxruntime.quantization.quantize_dynamic``, weights
per channel) and cached on disk, so the next load reuses it.

Why not sentence-transformers' own ``backend="onnx"``: it needs ``optimum-onnx``, whose
releases pin ``transformers<4.58`` (installing it would downgrade transformers, tokenizers
and huggingface_hub under everything else). This module needs ``onnx`` and
``onnxruntime`` only (the ``ctxengine[onnx]`` extra).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigurationError, DependencyMissingError, ModelNotFoundError

#: What :class:`~ctxengine.embeddings.SentenceTransformerEmbedder` accepts as ``backend``.
BACKENDS = ("torch", "onnx", "onnx-int8")

#: Bumped when the exported graph changes for the same model, so old files are not reused.
EXPORT_VERSION = 1

# Largest element-wise gap accepted between the exported graph and torch on the probe
# batch (fp32 export agrees to ~1e-6; a wrong graph is off by whole units).
_EXPORT_TOLERANCE = 1e-3
_PROBE_TEXTS = ["an exported graph must mask padding", "short"]


def user_cache_root() -> Path:
    """ctxengine's folder in the user cache directory (``~/.cache/ctxengine`` on Linux)."""
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs is optional: the XDG location it would give on Linux
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "ctxengine"
    return Path(user_cache_dir("ctxengine"))


def onnx_cache_dir() -> Path:
    """Where exported graphs are kept: ``CTXENGINE_ONNX_CACHE``, else ``<user cache>/onnx``."""
    configured = os.environ.get("CTXENGINE_ONNX_CACHE")
    return Path(configured) if configured else user_cache_root() / "onnx"


def _model_fingerprint(path: Path) -> str:
    """Names the model directory's current files: a model replaced in place (other sizes or
    modification times) gets a new export instead of a stale one."""
    digest = hashlib.sha256(f"v{EXPORT_VERSION}:{path.resolve()}".encode())
    for entry in sorted(path.iterdir()):
        if entry.is_file():
            stat = entry.stat()
            digest.update(f"|{entry.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _require_runtime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise DependencyMissingError(
            "the ONNX backends need onnxruntime and onnx: from the ctxengine clone, "
            "pip install -e '.[onnx]' (the ctxengine[onnx] extra)"
        ) from exc
    return onnxruntime


def _text_transformer(model: Any) -> Any:
    """The SentenceTransformer's first module if its forward pass can be exported: a
    sentence-transformers ``Transformer`` over text whose output is ``last_hidden_state``."""
    first = model[0]
    config = getattr(first, "modality_config", {"text": {"method": "forward"}})
    text = config.get("text") if isinstance(config, dict) else None
    if (
        type(first).__name__ != "Transformer"
        or not hasattr(first, "model")
        or text is None
        or text.get("method") != "forward"
        or text.get("method_output_name", "last_hidden_state") != "last_hidden_state"
        or len(config) != 1
    ):
        raise ConfigurationError(
            "the ONNX backends export text encoders whose first module is a "
            f"sentence-transformers Transformer; this model starts with {type(first).__name__} "
            f"({config}): use backend='torch'"
        )
    return first


def _input_names(transformer: Any) -> list[str]:
    """The tokenizer outputs the model's forward takes, in the forward's own order."""
    produced = set(transformer.tokenizer.model_input_names)
    accepted = list(inspect.signature(transformer.model.forward).parameters)
    names = [name for name in accepted if name in produced]
    if "input_ids" not in names or "attention_mask" not in names:
        raise ConfigurationError(
            f"cannot export a model whose forward takes {accepted[:6]}: it needs input_ids "
            "and attention_mask"
        )
    return names


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """The TorchScript exporter and the quantizer warn about things checked right after
    (the export is compared with torch on a padded batch); keep them off the user's console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs "consider pre-processing" at WARNING
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


@contextlib.contextmanager
def _atomic_target(target: Path) -> Iterator[Path]:
    """A temporary path next to ``target``, moved onto it only if the block succeeds: a
    reader (another process loading the same model) sees the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".onnx", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _export_fp32(transformer: Any, names: list[str], target: Path) -> None:
    import torch

    class Forward(torch.nn.Module):
        """Positional inputs (what the exporter traces) to the model's keyword forward."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            out = self.model(**dict(zip(names, inputs)), return_dict=True)
            return out["last_hidden_state"]

    # Two texts of different lengths: the traced graph takes the padding-mask path, which
    # is also right for unpadded batches.
    probe = transformer.tokenizer(_PROBE_TEXTS, padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with _atomic_target(target) as temporary, _quiet_export(), torch.no_grad():
        torch.onnx.export(
            Forward(transformer.model).eval(),
            tuple(probe[name] for name in names),
            str(temporary),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the torch.export path needs onnxscript and fails on HF masks
        )
        expected = Forward(transformer.model).eval()(*(probe[name] for name in names)).numpy()
        got = _session(temporary, threads=None).run(
            None, {name: probe[name].numpy().astype(np.int64) for name in names}
        )[0]
        gap = float(np.max(np.abs(got - expected)))
        if gap > _EXPORT_TOLERANCE:
            raise ModelNotFoundError(
                f"the ONNX export disagrees with torch by {gap:.2g} on a probe batch; "
                "use backend='torch' for this model"
            )


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weights: one scale per output column. One scale per matrix lost too much
    # (cosine to fp32 down to 0.90 on SciFact abstracts; per channel >= 0.99).
    with _atomic_target(target) as temporary, _quiet_export():
        quantize_dynamic(
            str(source),
            str(temporary),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )


def exported_model(model: Any, path: Path, backend: str, cache_dir: Path | None = None) -> Path:
    """The ONNX file for ``backend`` of the model loaded from ``path``: reused from the
    cache directory, or exported (and quantized) there first."""
    if backend not in BACKENDS[1:]:
        raise ConfigurationError(f"no ONNX export for backend {backend!r}")
    _require_runtime()
    transformer = _text_transformer(model)
    folder = (cache_dir or onnx_cache_dir()) / _model_fingerprint(path)
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        try:
            import onnx  # noqa: F401  (the exporter and the quantizer write through it)
        except ImportError as exc:
            raise DependencyMissingError(
                "exporting to ONNX needs the onnx package: pip install -e '.[onnx]'"
            ) from exc
        _export_fp32(transformer, _input_names(transformer), fp32)
    if backend == "onnx":
        return fp32
    int8 = folder / "model-int8.onnx"
    if not int8.is_file():
        _quantize_int8(fp32, int8)
    return int8


def _session(file: Path, threads: int | None) -> Any:
    onnxruntime = _require_runtime()
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    # Spinning workers burn the cores other processes (and torch) need on a shared machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def _onnx_forward_class() -> type:
    import torch

    class OnnxForward(torch.nn.Module):
        """Stands in for the Hugging Face model inside sentence-transformers' Transformer
        module: same inputs, ``last_hidden_state`` computed by ONNX Runtime."""

        def __init__(self, file: Path, names: Sequence[str], config: Any, threads: int | None):
            super().__init__()
            self.file = file
            self.names = list(names)
            self.config = config  # read by the Transformer module (output_hidden_states)
            self.session = _session(file, threads)

        def forward(self, **inputs: Any) -> dict[str, Any]:
            feeds = {name: inputs[name].numpy().astype(np.int64) for name in self.names}
            hidden = self.session.run(None, feeds)[0]
            return {"last_hidden_state": torch.from_numpy(hidden)}

    return OnnxForward


def use_onnx(
    model: Any, path: Path, backend: str, *, cache_dir: Path | None = None, threads: int | None
) -> Path:
    """Swap ``model``'s transformer forward for an ONNX Runtime session of ``backend``;
    returns the ONNX file used. The torch weights are released."""
    transformer = _text_transformer(model)
    names = _input_names(transformer)
    file = exported_model(model, path, backend, cache_dir)
    transformer.model = _onnx_forward_class()(file, names, transformer.model.config, threads)
    return file


__all__ = ["BACKENDS", "exported_model", "onnx_cache_dir", "use_onnx", "user_cache_root"]
