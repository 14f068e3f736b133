"""One node's privacy budget in one profile, on diffprivlib's ``BudgetAccountant``.

The budget is not kept in memory between rounds: the ledger holds every (ε, δ) a node has
spent in a profile, and the accountant is rebuilt from that list each time a round is about
to start. A round that would take the composed total past the budget is refused *before*
any training, with ``PrivacyBudgetError`` (code ``BUDGET_EXCEEDED``).

Composition: with ``slack = 0`` the totals are basic composition (Σε, and δ composed as
``1 − Π(1 − δᵢ)``); with ``slack > 0`` diffprivlib takes the smaller of that and the
advanced composition theorems (Dwork–Rothblum–Vadhan; Kairouz–Oh–Viswanath), paying
``slack`` in δ. Both are valid upper bounds for any adaptively chosen sequence of rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from federated.errors import PrivacyBudgetError
from fedspec.search import most_that_fit


@dataclass(frozen=True, order=True)
class PrivacySpend:
    """(ε, δ) spent by one node in one round (what the ledger records)."""

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not (self.epsilon >= 0 and math.isfinite(self.epsilon)):
            raise ValueError(f"epsilon must be finite and >= 0, got {self.epsilon}")
        if not 0.0 <= self.delta <= 1.0:
            raise ValueError(f"delta must be in [0, 1], got {self.delta}")


class NodeBudget:
    """A node's (ε, δ) budget in one profile and what it has already spent there."""

    def __init__(
        self,
        epsilon: float,
        delta: float,
        *,
        spent: Iterable[PrivacySpend | tuple[float, float]] = (),
        slack: float = 0.0,
        node_id: str | None = None,
    ) -> None:
        # Deferred: loads diffprivlib only when used.
        from diffprivlib.accountant import BudgetAccountant  # slow import (scikit-learn)
        from diffprivlib.utils import BudgetError

        self.node_id = node_id
        spends = [s if isinstance(s, PrivacySpend) else PrivacySpend(*s) for s in spent]
        try:
            self._accountant: Any = BudgetAccountant(epsilon=epsilon, delta=delta, slack=slack)
        except ValueError as exc:
            raise ValueError(f"invalid privacy budget: {exc}") from exc
        for past in spends:
            if past.epsilon == 0 and past.delta == 0:
                continue  # nothing spent yet (diffprivlib refuses a (0, 0) spend)
            try:
                self._accountant.spend(past.epsilon, past.delta)
            except BudgetError as exc:
                raise PrivacyBudgetError(
                    "the recorded spends already exceed the budget",
                    node_id=node_id,
                    budget=(epsilon, delta),
                    spent=[(s.epsilon, s.delta) for s in spends],
                ) from exc

    @property
    def budget(self) -> PrivacySpend:
        """The ceiling (ε, δ) for the composed total."""
        return PrivacySpend(float(self._accountant.epsilon), float(self._accountant.delta))

    @property
    def spent(self) -> list[PrivacySpend]:
        """Every spend so far, in order."""
        return [PrivacySpend(float(e), float(d)) for e, d in self._accountant.spent_budget]

    def total(self) -> PrivacySpend:
        """The composed (ε, δ) of every spend so far."""
        epsilon, delta = self._accountant.total()
        return PrivacySpend(float(epsilon), float(delta))

    def remaining(self, rounds: int = 1) -> PrivacySpend:
        """The (ε, δ) each of ``rounds`` more equal rounds may still spend."""
        epsilon, delta = self._accountant.remaining(rounds)
        return PrivacySpend(max(0.0, float(epsilon)), max(0.0, float(delta)))

    def check(self, spend: PrivacySpend) -> None:
        """Raise ``PrivacyBudgetError`` if spending ``spend`` would exceed the budget."""
        # Deferred: loads diffprivlib only when used.
        from diffprivlib.utils import BudgetError

        try:
            self._accountant.check(spend.epsilon, spend.delta)
        except BudgetError as exc:
            total = self.total()
            raise PrivacyBudgetError(
                f"a round costing (ε={spend.epsilon:g}, δ={spend.delta:g}) would exceed the "
                f"budget (ε={self.budget.epsilon:g}, δ={self.budget.delta:g}); spent so far "
                f"(ε={total.epsilon:g}, δ={total.delta:g}) in {len(self.spent)} rounds",
                node_id=self.node_id,
                requested=(spend.epsilon, spend.delta),
                spent=(total.epsilon, total.delta),
                budget=(self.budget.epsilon, self.budget.delta),
            ) from exc

    def spend(self, spend: PrivacySpend) -> None:
        """Record ``spend`` after :meth:`check`-ing it."""
        self.check(spend)
        self._accountant.spend(spend.epsilon, spend.delta)

    def rounds_left(self, per_round: PrivacySpend, limit: int = 100_000) -> int:
        """How many more rounds costing ``per_round`` fit in the budget (at most ``limit``)."""
        # Deferred: loads diffprivlib only when used.
        from diffprivlib.utils import Budget

        if per_round.epsilon == 0 and per_round.delta == 0:
            return limit
        budget = Budget(self.budget.epsilon, self.budget.delta)
        past = list(self._accountant.spent_budget)
        step = (per_round.epsilon, per_round.delta)

        def fits(count: int) -> bool:
            return bool(budget >= self._accountant.total(spent_budget=past + [step] * count))

        return most_that_fit(fits, limit)  # composed totals only grow with the count

    def __repr__(self) -> str:
        total = self.total()
        return (
            f"NodeBudget(node_id={self.node_id!r}, budget=({self.budget.epsilon:g}, "
            f"{self.budget.delta:g}), spent=({total.epsilon:g}, {total.delta:g}))"
        )


def compose(spends: Sequence[PrivacySpend], *, slack: float = 0.0) -> PrivacySpend:
    """The composed (ε, δ) of ``spends`` under the rules described in this module."""
    # Deferred: loads diffprivlib only when used.
    from diffprivlib.accountant import BudgetAccountant

    accountant = BudgetAccountant(slack=slack)
    epsilon, delta = accountant.total(spent_budget=[(s.epsilon, s.delta) for s in spends])
    return PrivacySpend(float(epsilon), float(delta))
