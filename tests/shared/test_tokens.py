import hashlib
import os
import subprocess
import sys

import pytest

from ctxengine.errors import InvalidInputError, InvalidTypeError, UnknownStrategyError
from ctxengine.tokens import (
    CharRatioFallbackCounter,
    HuggingFaceTokenCounter,
    TokenCounter,
    get_token_counter,
)

TEXTS = ["", "hello world", "Embeddings vs TF-IDF: 3.5% better!", "你好，世界 🙂 مرحبا", "x" * 5000]


def test_default_is_cl100k_and_counts_real_tokens(token_counter):
    counter = get_token_counter()
    assert counter.name == "cl100k_base"
    # cl100k splits "hello world" into "hello" + " world"
    assert counter.count("hello world") == 2
    assert counter.count("") == 0


def test_o200k_by_name_differs_from_cl100k_on_cjk():
    o200k = get_token_counter("o200k_base")
    cl100k = get_token_counter("cl100k_base")
    text = "上下文工程决定模型看到什么" * 20
    assert o200k.count(text) < cl100k.count(text)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("limit", [0, 1, 3, 17])
def test_truncate_never_exceeds_and_is_a_prefix(token_counter, text, limit):
    cut = token_counter.truncate(text, limit)
    assert token_counter.count(cut) <= limit
    assert text.startswith(cut)
    assert "\ufffd" not in cut


def test_special_tokens_in_user_text_are_plain_text(token_counter):
    assert token_counter.count("<|endoftext|>") > 1


def test_bad_input_is_typed(token_counter):
    with pytest.raises(InvalidTypeError):
        token_counter.count(None)
    with pytest.raises(InvalidInputError):
        token_counter.truncate("abc", -1)
    with pytest.raises(UnknownStrategyError):
        get_token_counter("gpt-17-magic")


def test_offline_load_in_a_fresh_process_with_empty_caches(tmp_path):
    """A new process with no tiktoken cache anywhere still loads cl100k (from bpe-openai)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")
    }
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    code = "from ctxengine.tokens import TiktokenCounter; print(TiktokenCounter().count('hello world'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    assert (
        tmp_path / "xdg" / "ctxengine" / "tiktoken" / hashlib.sha1(url.encode()).hexdigest()
    ).is_file()


def test_user_tiktoken_cache_dir_is_honoured(tmp_path):
    """A file already in the user's TIKTOKEN_CACHE_DIR is used as is (ours is not seeded)."""
    from ctxengine._tiktoken import _bundled_encoding

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    user_cache = tmp_path / "user-cache"
    user_cache.mkdir()
    (user_cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(
        _bundled_encoding("cl100k_base")
    )
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(user_cache), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    code = "from ctxengine.tokens import TiktokenCounter; print(TiktokenCounter().count('hello world'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    assert not (tmp_path / "xdg" / "ctxengine").exists()


def test_embedding_model_tokenizer_as_counter():
    from ctxengine.embeddings import bundled_model_path

    path = bundled_model_path()
    if path is None:
        pytest.skip("bundled MiniLM not installed")
    counter = HuggingFaceTokenCounter.from_pretrained(path)
    assert isinstance(counter, TokenCounter)
    assert counter.count("hello world") == 2
    text = "Embeddings map text to dense vectors. " * 10
    cut = counter.truncate(text, 7)
    assert counter.count(cut) <= 7 and text.startswith(cut) and len(cut) > 10


def test_chars_fallback_is_named_and_warns():
    with pytest.warns(RuntimeWarning, match="characters/4"):
        counter = CharRatioFallbackCounter()
    assert "fallback" in counter.name
    assert counter.count("abcdefgh") == 2
    assert counter.count(counter.truncate("abcdefghij", 2)) <= 2
