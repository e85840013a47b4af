"""The token counter picked from a chat model's name (or local path)."""

from __future__ import annotations

import pytest

from ctxengine import ContextEngine
from ctxengine.errors import InvalidTypeError, UnknownStrategyError
from ctxengine.tokens import (
    HuggingFaceTokenCounter,
    counter_for_model,
    default_token_counter,
    get_token_counter,
    model_encoding,
)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("openai:gpt-5-mini", "o200k_base"),
        ("azure/gpt-4o", "o200k_base"),
        ("ft:gpt-4o-mini:acme::abc", "o200k_base"),
        ("gpt-oss-20b", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
    ],
)
def test_openai_names_get_their_encoding(model, encoding):
    assert model_encoding(model) == encoding
    counter = counter_for_model(model)
    assert counter.name == encoding
    assert get_token_counter(model).name == encoding  # token_counter="gpt-4o" works anywhere


def test_the_two_encodings_really_differ():
    text = "Überprüfung der Kontextfenster: 東京の猫はとても可愛いです。" * 5
    assert counter_for_model("gpt-4o").count(text) != counter_for_model("gpt-4").count(text)


def test_unknown_hosted_models_get_the_default_counter():
    for model in (
        "claude-sonnet-4-5",
        "mistral-large-latest",
        "meta-llama/Llama-3.1-8B-Instruct",
        None,
    ):
        assert counter_for_model(model) is default_token_counter()
    with pytest.raises(InvalidTypeError):
        counter_for_model(42)
    with pytest.raises(UnknownStrategyError):  # as a counter *name*, an unknown model is an error
        get_token_counter("claude-sonnet-4-5")


def test_a_local_model_directory_gets_its_own_tokenizer():
    from ctxengine.embeddings import bundled_model_path

    path = bundled_model_path()
    if path is None:
        pytest.skip("bundled MiniLM not installed")
    counter = counter_for_model(str(path))
    assert isinstance(counter, HuggingFaceTokenCounter)
    assert counter.count("hello world") == 2


def test_engine_built_with_a_model_name_counts_with_its_encoding():
    engine = ContextEngine.from_retriever(None, token_counter="gpt-4o")
    assert engine.token_counter.name == "o200k_base"
    assert engine.build("what is in the window?").token_counter == "o200k_base"
