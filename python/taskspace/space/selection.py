"""Deciding which candidate to use: the ranking :meth:`TaskSpace.select` computes, weighed with costs.

:class:`Selection` is what ``select`` returns: the ranked ``(name, similarity)`` list plus the
choice and the reason for it. :func:`cost_table` reads per-call costs (a mapping, or a
:class:`~taskspace.probing.result.ProbeResult`'s usage records); the decision rule is
:meth:`Selection.decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from taskspace.errors import InvalidInputError

__all__ = ["Selection", "check_tolerance", "cost_table"]


def check_tolerance(tolerance: Any) -> float:
    """How much similarity may be given up for a lower cost: a number in [0, 2], as a float."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)):
        raise TypeError(f"tolerance must be a number, got {type(tolerance).__name__}")
    if not 0.0 <= float(tolerance) <= 2.0:
        raise InvalidInputError(f"tolerance must be in [0, 2] (a difference of cosines), got {tolerance}")
    return float(tolerance)


def cost_table(costs: Any, names: list[str]) -> dict[str, float] | None:
    """Per-call cost of every candidate in ``names``, from a mapping name -> cost or a ProbeResult's
    usage records (its mean cost per answered call); ``None`` when no costs are given."""
    if costs is None:
        return None
    from taskspace.probing.result import ProbeResult

    if isinstance(costs, ProbeResult):
        table: dict[str, float] = {}
        for name, m in costs.models.items():
            if m.usage.ok:
                table[name] = m.usage.cost / m.usage.ok
        costs = table
    if not isinstance(costs, Mapping):
        raise TypeError(
            f"costs must be a mapping name -> cost per call or a ProbeResult, got {type(costs).__name__}"
        )
    out = {}
    for name in names:
        if name not in costs:
            raise InvalidInputError(f"no cost for candidate {name!r}: costs must cover every candidate")
        c = costs[name]
        if isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating)):
            raise TypeError(f"the cost of {name!r} must be a number, got {type(c).__name__}")
        if not (np.isfinite(c) and c >= 0):
            raise InvalidInputError(f"the cost of {name!r} must be finite and >= 0, got {c}")
        out[name] = float(c)
    return out


class Selection(list):  # type: ignore[type-arg]
    """What :meth:`TaskSpace.select` returns: the ranked candidates as a list of
    ``(name, similarity)``, most similar first, plus the decision.

    Attributes:
        choice: the candidate to use (``None`` when there are no candidates).
        best: the most similar candidate.
        reason: the decision in words (similarities, costs, tolerance).
        costs: candidate -> cost per call, or ``None`` when no costs were given.
        tolerance: how much similarity may be given up for a lower cost.
    """

    choice: str | None
    best: str | None
    reason: str
    costs: dict[str, float] | None
    tolerance: float

    @classmethod
    def decide(
        cls, ranked: list[tuple[str, float]], *, costs: dict[str, float] | None, tolerance: float
    ) -> Selection:
        """The decision over ``ranked`` (most similar first): without ``costs`` the most similar
        candidate; with them, the cheapest one within ``tolerance`` of the best similarity (ties: the
        more similar, then the name)."""
        sel = cls(ranked)
        sel.costs, sel.tolerance = costs, tolerance
        if not ranked:
            sel.choice = sel.best = None
            sel.reason = "no candidates"
            return sel
        best, top = ranked[0]
        sel.best = best
        if costs is None:
            sel.choice = best
            sel.reason = f"{best} is the most similar to the dataset ({top:.4f}); no costs given"
            return sel
        within = [(name, s) for name, s in ranked if s >= top - tolerance]
        name, sim = min(within, key=lambda p: (costs[p[0]], -p[1], p[0]))
        sel.choice = name
        if name == best:
            cheaper = [n for n, _ in ranked if costs[n] < costs[best]]
            why = (
                f"no cheaper candidate is within {tolerance:g} of its similarity"
                + (f" (cheaper: {', '.join(cheaper)})" if cheaper else "")
                if cheaper
                else "no candidate is cheaper"
            )
            sel.reason = f"{best} is the most similar ({top:.4f}, cost {costs[best]:g} per call); {why}"
        else:
            saving = f"{costs[best] / costs[name]:.1f}x cheaper" if costs[name] > 0 else "free"
            sel.reason = (
                f"{name} ({sim:.4f}, cost {costs[name]:g} per call) is within {tolerance:g} of the most "
                f"similar, {best} ({top:.4f}, cost {costs[best]:g}), and the cheapest such candidate "
                f"({saving})"
            )
        return sel

    def table(self) -> str:
        """The ranking as a plain-text table (similarity, cost, which one is chosen) and the reason."""
        rows = [("", "candidate", "similarity", "cost/call")]
        for name, s in self:
            cost = "" if self.costs is None else f"{self.costs[name]:g}"
            rows.append(("*" if name == self.choice else "", name, f"{s:.4f}", cost))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join([*lines, "", self.reason])
