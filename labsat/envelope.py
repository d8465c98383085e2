"""The allowed set of one voltage source, as vectorised rules and a projection onto it.

The guard refuses writes outside the envelope; this module says what the envelope *is*, so that the
guard's single-point check, its batch check and every planner that wants a point the guard will accept
(training's controls, SAT's perturbed point, calibration's sweep plans) use the same rules and never
re-derive them:

- a voltage box per channel, a current cap ``|V|·G ≤ I_max`` and a power cap ``V²·G ≤ P_max``
  (``G = 1/R``; no resistance, no current or power rule);
- the largest difference between neighbouring channels, ``|v_i − v_{i+1}| ≤ d``;
- the bench's heater budget, ``Σ V²·G + (power of the other sources) ≤ B``.

Every rule is applied to every row of a ``(B, n)`` array at once (:meth:`ChannelRules.first_breach`);
the single-point check is the same code on one row, so the two paths cannot disagree.

:func:`project` returns, per row, a point those very checks accept. "Nearest" means: the Euclidean
projection onto the intersection of the sets above, computed with Dykstra's alternating projections
(each set has an exact projection: the box including the current and power caps, the budget
ellipsoid, and the neighbour slabs taken as two families of disjoint channel pairs), followed by a
final safety step. That step rounds to the caller's dtype *towards* a known-safe anchor point (the
source's safe values) and, where the rounded point still breaks a rule by rounding error or by the
iteration's tolerance, moves it the smallest tried fraction towards the anchor (first 2⁻⁴⁰ of the way,
at worst all of it). The rules are convex and the anchor is inside, so the answer is inside; it is
within that fraction (plus one ulp) of the exact projection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from labsat.benchfile import ChannelLimits

_SHRINK = (0.0, 2.0**-40, 2.0**-30, 2.0**-20, 2.0**-12, 2.0**-6, 0.1, 0.25, 0.5, 1.0)
"""Fractions of the way towards the anchor tried, in order, after the rounded projection."""

_Describe = Callable[[int, int], "Breach"]
_Projector = Callable[[np.ndarray], np.ndarray]

DYKSTRA_ITERATIONS = 500
DYKSTRA_TOLERANCE = 1e-13


@dataclass(frozen=True)
class Breach:
    """The first rule a batch breaks: the row, the channel named in the refusal, its value and the rule."""

    row: int
    channel: int
    value: float
    limit: str


@dataclass(frozen=True)
class Budget:
    """The bench heater budget as it applies to one source while the others hold their power.

    ``present_mw``: this source's power per channel now (names the channel a refusal blames).
    """

    limit_mw: float
    others_mw: float
    present_mw: np.ndarray

    def totals(self, power_mw: np.ndarray) -> np.ndarray:
        """Bench total per row for this source at ``power_mw`` ``(B, n)``: the same sum in the same order for
        any number of rows (channels accumulated one after another), so a row is judged alike alone or in a batch.
        """
        own = np.zeros(power_mw.shape[0])
        for column in power_mw.T:
            own = own + column
        return own + self.others_mw


@dataclass(frozen=True)
class ChannelRules:
    """The per-source rules in vector form (built from the bench file's channel limits)."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    conductance_ms: np.ndarray
    """mW per V² and mA per V; 0 where no resistance is configured."""
    current_max_ma: np.ndarray
    power_max_mw: np.ndarray
    neighbour_max_diff: float | None = None

    @classmethod
    def from_limits(
        cls, names: Sequence[str], limits: Sequence[ChannelLimits], neighbour_max_diff: float | None = None
    ) -> ChannelRules:
        resistance = np.array([lim.resistance_ohm or math.inf for lim in limits])
        return cls(
            names=tuple(names),
            low=np.array([lim.voltage[0] for lim in limits], dtype=float),
            high=np.array([lim.voltage[1] for lim in limits], dtype=float),
            conductance_ms=np.where(np.isfinite(resistance), 1e3 / resistance, 0.0),
            current_max_ma=np.array([lim.current_max_ma or math.inf for lim in limits], dtype=float),
            power_max_mw=np.array([lim.power_max_mw or math.inf for lim in limits], dtype=float),
            neighbour_max_diff=neighbour_max_diff,
        )

    @property
    def n_channels(self) -> int:
        return len(self.names)

    def power_mw(self, volts: np.ndarray) -> np.ndarray:
        """Electrical power per channel (0 where no resistance is configured)."""
        return volts**2 * self.conductance_ms

    def magnitude_cap(self) -> np.ndarray:
        """The largest ``|V|`` the current and power caps allow per channel (``inf``: none)."""
        with np.errstate(divide="ignore"):
            current = np.where(self.conductance_ms > 0, self.current_max_ma / self.conductance_ms, math.inf)
            power = np.where(self.conductance_ms > 0, np.sqrt(self.power_max_mw / self.conductance_ms), math.inf)
        return np.minimum(current, power)

    def power_cap_mw(self) -> np.ndarray:
        """The largest power per channel that its box, current and power rules allow together."""
        top = np.minimum(np.maximum(np.abs(self.low), np.abs(self.high)), self.magnitude_cap())
        return np.minimum(self.power_mw(top), self.power_max_mw)

    # -- checking ---------------------------------------------------------------------------------

    def first_breach(self, rows: np.ndarray, budget: Budget | None = None) -> Breach | None:
        """The first broken rule of the first row that breaks any, or None when every row is allowed.

        Within a row the rules are taken in a fixed order (finite, box, current, power, neighbour, budget),
        and within a rule the first channel; that is what a single-point refusal names.
        """
        rules = self._rule_masks(rows, budget)
        bad_rows = np.zeros(rows.shape[0], dtype=bool)
        for mask, _ in rules:
            bad_rows |= mask.any(axis=1)
        if not bad_rows.any():
            return None
        row = int(np.flatnonzero(bad_rows)[0])
        for mask, describe in rules:
            if mask[row].any():
                channel = int(np.flatnonzero(mask[row])[0])
                return describe(row, channel)
        raise AssertionError("a bad row breaks some rule")  # pragma: no cover

    def allowed(self, rows: np.ndarray, budget: Budget | None = None) -> np.ndarray:
        """Per row: does it pass every rule (exactly the check of :meth:`first_breach`)?"""
        ok = np.ones(rows.shape[0], dtype=bool)
        for mask, _ in self._rule_masks(rows, budget):
            ok &= ~mask.any(axis=1)
        return ok

    def _rule_masks(self, rows: np.ndarray, budget: Budget | None) -> list[tuple[np.ndarray, _Describe]]:
        """Each rule as a ``(B, n)`` mask of the channels it refuses, with how to word the refusal."""
        with np.errstate(invalid="ignore"):
            finite = ~np.isfinite(rows)
            low = rows < self.low
            high = rows > self.high
            current = np.abs(rows) * self.conductance_ms
            power = self.power_mw(rows)
        rules: list[tuple[np.ndarray, _Describe]] = [
            (finite, lambda r, c: Breach(r, c, float(rows[r, c]), "not a finite number")),
            (low, lambda r, c: Breach(r, c, float(rows[r, c]), f"below the minimum {self.low[c]:g} V")),
            (high, lambda r, c: Breach(r, c, float(rows[r, c]), f"above the maximum {self.high[c]:g} V")),
            (
                current > self.current_max_ma,
                lambda r, c: Breach(
                    r, c, float(rows[r, c]), f"current {current[r, c]:.4g} mA exceeds {self.current_max_ma[c]:g} mA"
                ),
            ),
            (
                power > self.power_max_mw,
                lambda r, c: Breach(
                    r, c, float(rows[r, c]), f"power {power[r, c]:.4g} mW exceeds {self.power_max_mw[c]:g} mW"
                ),
            ),
        ]
        if self.neighbour_max_diff is not None and self.n_channels > 1:
            limit = self.neighbour_max_diff
            with np.errstate(invalid="ignore"):
                diff = np.abs(np.diff(rows, axis=1))
            neighbour = np.zeros(rows.shape, dtype=bool)
            neighbour[:, 1:] = diff > limit
            rules.append(
                (
                    neighbour,
                    lambda r, c: Breach(
                        r,
                        c,
                        float(rows[r, c]),
                        f"differs from neighbour {self.names[c - 1]} ({rows[r, c - 1]:g} V) by {diff[r, c - 1]:.4g} V, "
                        f"more than {limit:g} V",
                    ),
                )
            )
        if budget is not None:
            with np.errstate(invalid="ignore"):
                totals = budget.totals(power)
            over = np.zeros(rows.shape, dtype=bool)
            hottest = np.argmax(power - budget.present_mw, axis=1)
            over[np.arange(rows.shape[0]), hottest] = totals > budget.limit_mw
            rules.append(
                (
                    over,
                    lambda r, c: Breach(
                        r,
                        c,
                        float(rows[r, c]),
                        f"total heater power {totals[r]:.4g} mW would exceed the bench budget {budget.limit_mw:g} mW",
                    ),
                )
            )
        return rules

    # -- projecting -------------------------------------------------------------------------------

    def project(
        self,
        rows: np.ndarray,
        anchor: np.ndarray,
        budget: Budget | None = None,
        *,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
        dtype: np.dtype | type = np.float64,
    ) -> np.ndarray:
        """The nearest allowed point of each row of ``rows`` ``(B, n)`` (see the module doc), in ``dtype``.

        ``lower``/``upper`` (broadcast to ``rows``) narrow the box further, e.g. to hold some channels fixed
        (``lower = upper = value``). ``anchor`` is a point known to be allowed (the safe values), moved into
        the narrowed box. The result, cast to float64, passes :meth:`first_breach` with ``budget``; a row for
        which not even the anchor does raises :class:`ValueError` naming the rule.
        """
        rows = np.asarray(rows, dtype=float)
        if rows.ndim != 2 or rows.shape[1] != self.n_channels:
            raise ValueError(f"expected a (B, {self.n_channels}) array, got {rows.shape}")
        cap = self.magnitude_cap()
        lo = np.broadcast_to(np.maximum(self.low, -cap), rows.shape).copy()
        hi = np.broadcast_to(np.minimum(self.high, cap), rows.shape).copy()
        if lower is not None:
            lo = np.maximum(lo, lower)
        if upper is not None:
            hi = np.minimum(hi, upper)
        if np.any(lo > hi):
            raise ValueError("the narrowed box is empty: a held channel lies outside its limits")
        start = np.where(np.isfinite(rows), rows, np.clip(0.0, lo, hi))
        room = None if budget is None else budget.limit_mw - budget.others_mw
        nearest = _dykstra(start, lo, hi, self.conductance_ms, room, self.neighbour_max_diff)
        base = np.clip(np.broadcast_to(np.asarray(anchor, dtype=float), rows.shape), lo, hi)
        return self._inside(nearest, base, budget, np.dtype(dtype))

    def _inside(self, point: np.ndarray, anchor: np.ndarray, budget: Budget | None, dtype: np.dtype) -> np.ndarray:
        """``point`` rounded to ``dtype`` towards ``anchor``, moved towards it as far as needed to pass every rule."""
        result = np.empty(point.shape, dtype=dtype)
        pending = np.ones(point.shape[0], dtype=bool)
        for fraction in _SHRINK:
            idx = np.flatnonzero(pending)
            if idx.size == 0:
                break
            wanted = point[idx] + (anchor[idx] - point[idx]) * fraction
            cast = _round_towards(wanted, anchor[idx], dtype)
            ok = self.allowed(cast.astype(float), budget)
            result[idx[ok]] = cast[ok]
            pending[idx[ok]] = False
        if pending.any():
            row = int(np.flatnonzero(pending)[0])
            breach = self.first_breach(_round_towards(anchor[row : row + 1], anchor[row : row + 1], dtype), budget)
            detail = "" if breach is None else f": {self.names[breach.channel]} {breach.limit}"
            raise ValueError(f"no allowed point found, not even the safe values{detail}")
        return result


def _round_towards(values: np.ndarray, anchor: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` in ``dtype``, each rounded towards ``anchor`` (never past the float64 value, seen from it)."""
    cast = values.astype(dtype)
    if dtype == np.float64:
        return cast
    wide = cast.astype(float)
    away = np.abs(wide - anchor) > np.abs(values - anchor)
    if away.any():
        towards = anchor.astype(dtype)
        cast[away] = np.nextafter(cast[away], towards[away])
    return cast


# -- Dykstra's alternating projections --------------------------------------------------------------


def _dykstra(
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    conductance: np.ndarray,
    room_mw: float | None,
    neighbour: float | None,
) -> np.ndarray:
    """Euclidean projection of each row onto box ∩ budget ellipsoid ∩ neighbour slabs (within tolerance)."""
    sets: list[_Projector] = []
    if room_mw is not None and np.any(conductance > 0):
        sets.append(lambda v: _onto_budget(v, conductance, room_mw))
    if neighbour is not None and x.shape[1] > 1:
        sets.append(lambda v: _onto_pairs(v, neighbour, 0))
        if x.shape[1] > 2:
            sets.append(lambda v: _onto_pairs(v, neighbour, 1))

    def box(v: np.ndarray) -> np.ndarray:
        return np.clip(v, lo, hi)

    if not sets:
        return box(x)
    sets.append(box)  # last, so the answer lies exactly in the box
    increments = [np.zeros_like(x) for _ in sets]
    for _ in range(DYKSTRA_ITERATIONS):
        previous = x
        for k, onto in enumerate(sets):
            shifted = x + increments[k]
            x = onto(shifted)
            increments[k] = shifted - x
        if np.max(np.abs(x - previous), initial=0.0) <= DYKSTRA_TOLERANCE * (1.0 + np.max(np.abs(x), initial=0.0)):
            break
    return x


def _onto_pairs(v: np.ndarray, limit: float, first: int) -> np.ndarray:
    """Projection onto ``|v_i − v_{i+1}| ≤ limit`` for the disjoint pairs ``(first, first+1), (first+2, …)``."""
    out = v.copy()
    a = out[:, first:-1:2]
    b = out[:, first + 1 :: 2]
    a, b = a[:, : b.shape[1]], b[:, : a.shape[1]]
    diff = a - b
    excess = (np.abs(diff) - limit).clip(min=0.0) / 2 * np.sign(diff)
    count = a.shape[1]
    out[:, first : first + 2 * count : 2] = a - excess
    out[:, first + 1 : first + 1 + 2 * count : 2] = b + excess
    return out


def _onto_budget(v: np.ndarray, conductance: np.ndarray, room_mw: float) -> np.ndarray:
    """Projection onto ``Σ G_i v_i² ≤ room``: ``v_i / (1 + λ G_i)`` with λ ≥ 0 found by Newton's method per row."""
    if room_mw <= 0:
        return np.where(conductance > 0, 0.0, v)
    power = (v**2 * conductance).sum(axis=1)
    out = v.copy()
    over = power > room_mw
    if not over.any():
        return out
    x = v[over]
    # Newton from λ = 0: f(λ) = spent(λ) − room is convex and decreasing, so the iterates rise monotonically
    # to the root and never overshoot (the point stays at or just outside the ellipsoid; the final safety
    # step of :func:`ChannelRules.project` absorbs that last rounding).
    lam = np.zeros(x.shape[0])
    weighted = conductance * x**2
    for _ in range(60):
        scale = 1.0 + lam[:, None] * conductance
        value = (weighted / scale**2).sum(axis=1) - room_mw
        slope = -2.0 * (weighted * conductance / scale**3).sum(axis=1)
        step = np.where(value > 0, -value / np.minimum(slope, -1e-300), 0.0)
        lam = lam + step
        if np.all(step <= 1e-15 * np.maximum(lam, 1e-300)):
            break
    out[over] = x / (1.0 + lam[:, None] * conductance)
    return out
