"""The token budget: one policy, one counter, one ledger per request.

:class:`TokenBudget` is the policy (a total, history's share, the answer reserve and the
only token counter); :meth:`TokenBudget.start` opens a :class:`BudgetLedger` that fills
every slot of one request in a fixed order and renders it (:mod:`.render`), counted
again and trimmed so that it never goes over.
"""

from .ledger import MIN_TOKENS_PER_DOCUMENT, SLOTS, BudgetLedger, DocumentCompressor
from .policy import TokenBudget
from .render import Rendered, build_messages

__all__ = [
    "MIN_TOKENS_PER_DOCUMENT",
    "SLOTS",
    "BudgetLedger",
    "DocumentCompressor",
    "Rendered",
    "TokenBudget",
    "build_messages",
]
