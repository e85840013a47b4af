"""The budget policy: a total in real tokens, one token counter, and how slots share it."""

from __future__ import annotations

from .._validation import check_finite, check_positive_int
from ..errors import BudgetError, ConfigurationError
from ..tokens import TokenCounter, get_token_counter
from .ledger import BudgetLedger


class TokenBudget:
    """A total in tokens and how it is shared between the slots of one request.

    The budget owns the only token counter of an engine: every slot is counted with it,
    so what a stage spends is what the final count sees.

    Parameters
    ----------
    total:
        Tokens the whole request may use (counted by ``token_counter``).
    max_history_share:
        The most of the tokens left after the fixed slots (system prompt, question, answer
        reserve, an agent's tools and tool messages) that history may take (0.5 by
        default). Unused history tokens go to documents.
    reserve_for_answer:
        Tokens kept free for the model's reply (not part of the prompt).
    token_counter:
        A :class:`~ctxengine.tokens.TokenCounter` or its name (``"cl100k_base"``...);
        ``None``: the default counter.

    Examples
    --------
    >>> from ctxengine.budget import TokenBudget
    >>> budget = TokenBudget(200, token_counter="cl100k_base")
    >>> ledger = budget.start("You are terse.")
    >>> ledger.usage
    {'system_prompt': 4}
    >>> ledger.remaining
    196
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
        self.max_history_share = check_finite(
            max_history_share, "max_history_share", low=0.0, high=1.0
        )
        self.reserve_for_answer = check_positive_int(
            reserve_for_answer, "reserve_for_answer", allow_zero=True
        )
        if self.reserve_for_answer >= self.total:
            raise BudgetError(
                f"reserve_for_answer ({self.reserve_for_answer}) must be smaller than the "
                f"token budget ({self.total})"
            )
        self.token_counter = get_token_counter(token_counter)

    @classmethod
    def coerce(
        cls, budget: int | TokenBudget, token_counter: TokenCounter | str | None = None
    ) -> TokenBudget:
        """``budget`` as a :class:`TokenBudget`: an int is the total (counted by
        ``token_counter``); a budget is kept, and since it brings the only counter, a
        different ``token_counter`` is a :class:`~ctxengine.errors.ConfigurationError`
        (a second counter would spend other units)."""
        if not isinstance(budget, TokenBudget):
            return cls(budget, token_counter=token_counter)
        if token_counter is not None:
            named = get_token_counter(token_counter)
            if named.name != budget.token_counter.name:
                raise ConfigurationError(
                    f"token_counter {named.name!r} disagrees with the budget's "
                    f"{budget.token_counter.name!r}: give the counter to one of them"
                )
        return budget

    def start(self, system_prompt: str = "") -> BudgetLedger:
        """A fresh ledger for one request, with the answer reserve and ``system_prompt``
        taken first (a :class:`~ctxengine.errors.BudgetError` when the prompt cannot fit)."""
        return BudgetLedger(self, system_prompt)

    def __repr__(self) -> str:
        return (
            f"TokenBudget(total={self.total}, max_history_share={self.max_history_share}, "
            f"reserve_for_answer={self.reserve_for_answer}, "
            f"token_counter={getattr(self.token_counter, 'name', self.token_counter)!r})"
        )


__all__ = ["TokenBudget"]
