"""Counters other than tiktoken's: any Hugging Face tokenizer (e.g. the embedding
model's), and the characters/4 estimate, kept only as a named last resort that warns.
Import them from :mod:`ctxengine.tokens`."""

from __future__ import annotations

import os
import warnings
from typing import Any

from ._validation import check_positive_int, check_text
from .errors import ConfigurationError, DependencyMissingError


class HuggingFaceTokenCounter:
    """Counts with a Hugging Face tokenizer (e.g. the embedding model's), special tokens excluded."""

    def __init__(self, tokenizer: Any, name: str | None = None) -> None:
        if not hasattr(tokenizer, "encode"):
            raise ConfigurationError("tokenizer must have an encode() method")
        self._tokenizer = tokenizer
        self.name: str = name or str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> HuggingFaceTokenCounter:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise DependencyMissingError("pip install transformers") from exc
        return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True), str(path))

    def _ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def count(self, text: str) -> int:
        check_text(text, "text", allow_empty=True)
        return len(self._ids(text)) if text else 0

    def truncate(self, text: str, max_tokens: int) -> str:
        check_text(text, "text", allow_empty=True)
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        if self.count(text) <= max_tokens:
            return text
        # Decoding word-piece ids does not give back the original characters, so cut the
        # original string by binary search on its length instead.
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if self.count(text[:mid]) <= max_tokens:
                low = mid
            else:
                high = mid - 1
        return text[:low]

    def __repr__(self) -> str:
        return f"HuggingFaceTokenCounter({self.name!r})"


class CharRatioFallbackCounter:
    """LAST-RESORT estimate: one token per ``chars_per_token`` characters, rounded up.

    Not a real tokenizer. It warns on creation; prefer :class:`TiktokenCounter`.
    """

    def __init__(self, chars_per_token: int = 4, *, warn: bool = True) -> None:
        self.chars_per_token = check_positive_int(chars_per_token, "chars_per_token")
        self.name = f"chars/{chars_per_token} fallback"
        if warn:
            warnings.warn(
                "ctxengine is estimating tokens as characters/4; counts will not match the "
                "model. Install tiktoken and bpe-openai for real token counts.",
                RuntimeWarning,
                stacklevel=2,
            )

    def count(self, text: str) -> int:
        check_text(text, "text", allow_empty=True)
        return -(-len(text) // self.chars_per_token)

    def truncate(self, text: str, max_tokens: int) -> str:
        check_text(text, "text", allow_empty=True)
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        return text[: max_tokens * self.chars_per_token]


__all__ = ["CharRatioFallbackCounter", "HuggingFaceTokenCounter"]
