"""Token budget: named slots filled in a fixed order, in real tokens, never over the total.

Reservation order: the system prompt, the question, an optional reserve for the model's
answer, then conversation history (capped at ``max_history_share`` of what is left, so
history never silently takes the documents' share), then retrieved documents with
everything that remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._validation import check_finite, check_positive_int
from .errors import BudgetError, InvalidTypeError
from .tokens import TokenCounter, get_token_counter

SLOTS = ("system_prompt", "query", "answer_reserve", "history", "retrieved_docs")


class TokenBudget:
    """The budget policy: a total in tokens and how it is shared between slots.

    Parameters
    ----------
    total:
        Tokens the whole prompt may use (counted by ``token_counter``).
    max_history_share:
        The most of the tokens left after the system prompt, question and answer reserve
        that history may take (0.5 by default). Unused history tokens go to documents.
    reserve_for_answer:
        Tokens kept free for the model's reply (not part of the prompt).
    """

    def __init__(
        self,
        total: int,
        *,
        max_history_share: float = 0.5,
        reserve_for_answer: int = 0,
        token_counter: TokenCounter | str | None = None,
    ) -> None:
        self.total = check_positive_int(total, "token_budget")
        self.max_history_share = check_finite(max_history_share, "max_history_share", low=0.0, high=1.0)
        self.reserve_for_answer = check_positive_int(reserve_for_answer, "reserve_for_answer", allow_zero=True)
        if self.reserve_for_answer >= self.total:
            raise BudgetError(
                f"reserve_for_answer ({self.reserve_for_answer}) must be smaller than the "
                f"token budget ({self.total})"
            )
        self.token_counter = get_token_counter(token_counter)

    def start(self) -> BudgetLedger:
        """A fresh ledger for one packet."""
        return BudgetLedger(self)

    def __repr__(self) -> str:
        return (
            f"TokenBudget(total={self.total}, max_history_share={self.max_history_share}, "
            f"reserve_for_answer={self.reserve_for_answer})"
        )


@dataclass
class BudgetLedger:
    """What one packet has spent so far, slot by slot."""

    budget: TokenBudget
    spent: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.budget.reserve_for_answer:
            self.spent["answer_reserve"] = self.budget.reserve_for_answer

    @property
    def used(self) -> int:
        return sum(self.spent.values())

    @property
    def remaining(self) -> int:
        return self.budget.total - self.used

    def count(self, text: str) -> int:
        return self.budget.token_counter.count(text)

    def reserve_system_prompt(self, system_prompt: str) -> int:
        """Reserve the system prompt first; a budget that cannot hold it is an error."""
        if not isinstance(system_prompt, str):
            raise InvalidTypeError("system_prompt must be a str")
        tokens = self.count(system_prompt)
        if tokens > self.remaining:
            raise BudgetError(
                f"the system prompt needs {tokens} tokens but the budget leaves only "
                f"{self.remaining} (token_budget={self.budget.total}, "
                f"reserve_for_answer={self.budget.reserve_for_answer})"
            )
        self.spent["system_prompt"] = tokens
        return tokens

    def take(self, slot: str, tokens: int) -> None:
        """Record ``tokens`` in ``slot``; more than what is left is a :class:`BudgetError`."""
        if tokens > self.remaining:
            raise BudgetError(f"{slot} needs {tokens} tokens, only {self.remaining} left")
        self.spent[slot] = self.spent.get(slot, 0) + tokens

    def release(self, slot: str) -> None:
        self.spent.pop(slot, None)

    def history_cap(self, *, documents_pending: bool = True) -> int:
        """Tokens history may use: its share of what is left, or all of it when no documents wait."""
        if not documents_pending:
            return self.remaining
        return int(self.remaining * self.budget.max_history_share)


__all__ = ["SLOTS", "BudgetLedger", "TokenBudget"]
