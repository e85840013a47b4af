"""``ContextEngineMemory``: the engine's decay memory as a legacy LangChain ``BaseMemory``
(``langchain_classic``), for existing chains such as ``ConversationChain``."""

from __future__ import annotations

from typing import Any

from langchain_classic.base_memory import BaseMemory
from langchain_classic.memory.utils import get_prompt_input_key
from pydantic import ConfigDict, model_validator

from ctxengine import formatting as fmt
from ctxengine._validation import check_positive_int, check_text, is_blank
from ctxengine.errors import InvalidInputError
from ctxengine.integration import check_adapter_options, copy_sharing

from ._convert import turns_to_messages
from ._history import check_engine, recall


class ContextEngineMemory(BaseMemory):
    """Chain memory backed by ``engine.memory`` (session ``session_id``).

    ``load_memory_variables`` returns, under ``memory_key``, the turns that still matter
    for the chain's input (decay plus relevance to that input), chronological, fitting
    ``max_tokens`` (default: the history share of the engine's budget), as messages
    (``return_messages=True``) or as the engine's own rendering (``role: text`` lines).
    ``save_context`` remembers the input as a ``user`` turn and the output as an
    ``assistant`` turn, the same roles the chat history and middleware adapters use.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        check_adapter_options(type(self), data)  # pydantic ignored a misspelt option
        super().__init__(**data)

    engine: Any
    session_id: str = "default"
    memory_key: str = "history"
    input_key: str | None = None
    output_key: str | None = None
    return_messages: bool = False
    max_tokens: int | None = None

    @model_validator(mode="after")
    def _check(self) -> ContextEngineMemory:
        check_engine(self.engine)
        check_text(self.session_id, "session_id")
        if self.max_tokens is not None:
            check_positive_int(self.max_tokens, "max_tokens")
        return self

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ContextEngineMemory:
        """A copy with its own settings sharing the engine (its memory store)."""
        return copy_sharing(self, memo)

    @property
    def memory_variables(self) -> list[str]:
        return [self.memory_key]

    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        query = inputs.get(self._input_key(inputs)) if inputs else None
        if not isinstance(query, str) or is_blank(query):
            query = None  # no question yet: decay alone ranks the turns
        turns = recall(self.engine, query, self.session_id, self.max_tokens)
        if self.return_messages:
            return {self.memory_key: turns_to_messages(turns)}
        return {self.memory_key: fmt.render_turns([t.turn for t in turns])}

    def save_context(self, inputs: dict[str, Any], outputs: dict[str, str]) -> None:
        key = self._input_key(inputs)
        if key not in inputs or (self.output_key is not None and self.output_key not in outputs):
            raise InvalidInputError(
                f"save_context needs input {key!r} and output {self.output_key!r}"
            )
        question = inputs[key]
        if self.output_key is not None:
            answer = outputs[self.output_key]
        elif len(outputs) == 1:
            answer = next(iter(outputs.values()))
        else:
            raise InvalidInputError(
                f"several outputs {sorted(outputs)}: set output_key to the one to remember"
            )
        # Both checked before either is stored: a bad answer must not leave its question
        # behind as half an exchange.
        check_text(question, "the input to remember")
        check_text(answer, "the output to remember")
        self.engine.remember("user", question, session_id=self.session_id)
        self.engine.remember("assistant", answer, session_id=self.session_id)

    def clear(self) -> None:
        self.engine.memory.clear(self.session_id)

    def _input_key(self, inputs: dict[str, Any]) -> str:
        if self.input_key is not None:
            return self.input_key
        try:
            return get_prompt_input_key(inputs, self.memory_variables)
        except ValueError as exc:
            raise InvalidInputError(f"{exc}: set input_key to the one to remember") from exc


__all__ = ["ContextEngineMemory"]
