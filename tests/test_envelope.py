"""The allowed set: batches are checked row by row against every rule, and projections land inside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labsat.benchfile import ChannelLimits
from labsat.clock import VirtualClock
from labsat.errors import LimitViolation
from labsat.guard import GuardedVoltageSource, SafetyGuard


class PlainSource:
    """A voltage source that takes every write and remembers it."""

    def __init__(self, n: int) -> None:
        self.n_channels = n
        self.outputs = np.zeros(n)
        self.writes: list[np.ndarray] = []

    def identity(self) -> str:
        return "plain"

    def write_voltages(self, channels: np.ndarray, volts: np.ndarray) -> None:
        self.outputs[channels] = volts
        self.writes.append(self.outputs.copy())

    def read_voltages(self) -> np.ndarray:
        return self.outputs.copy()

    def outputs_off(self) -> None:
        self.outputs[:] = 0.0


def _source(
    n: int = 2,
    *,
    neighbour: float | None = None,
    budget: float | None = None,
    limits: ChannelLimits | None = None,
    other: float | None = None,
) -> tuple[SafetyGuard, GuardedVoltageSource, PlainSource]:
    guard = SafetyGuard(VirtualClock(), heater_power_budget_mw=budget)
    limits = limits or ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0)
    device = PlainSource(n)
    source = guard.add_voltage_source("h", device, [f"h{i}" for i in range(n)], [limits] * n, neighbour)
    if other is not None:  # a second heater source that holds other² mW of the budget
        plain = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0)
        second = guard.add_voltage_source("g", PlainSource(1), ["g0"], [plain])
        second.set_vector([other])
    return guard, source, device


def test_check_batch_refuses_the_neighbour_rule_like_set_sample() -> None:
    _, source, device = _source(neighbour=1.0)
    batch = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    with pytest.raises(LimitViolation, match=r"h1 = 2 refused: differs from neighbour h0 \(0 V\) by 2 V.*row 0"):
        source.check_batch(batch)
    with pytest.raises(LimitViolation, match=r"differs from neighbour h0 \(0 V\) by 2 V"):
        source.set_sample(batch[0])
    assert device.writes == []
    source.check_batch(torch.tensor([[0.0, 1.0], [1.0, 0.5]]))  # each row within 1 V of its neighbour


def test_check_batch_refuses_the_bench_budget_with_the_other_sources_counted() -> None:
    _, source, device = _source(n=3, budget=10.0, other=np.sqrt(2.0))  # the other source holds 2 mW
    fine = torch.tensor([[2.0, 1.0, 1.0], [0.0, 2.0, 2.0]])  # 6 and 8 mW: 8 and 10 mW in all
    source.check_batch(fine)  # (their column-wise maximum, 2 V everywhere, would be 14 mW)
    too_much = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 0.5]])  # row 1: 8.25 + 2 = 10.25 mW
    with pytest.raises(
        LimitViolation, match=r"total heater power 10\.25 mW would exceed the bench budget 10 mW.*row 1"
    ):
        source.check_batch(too_much)
    with pytest.raises(LimitViolation, match=r"total heater power 10\.25 mW"):
        source.set_sample(too_much[1])
    assert device.writes == []


def test_check_batch_refuses_every_per_channel_rule_in_any_row() -> None:
    limits = ChannelLimits(voltage=(-1.0, 4.0), resistance_ohm=1000.0, current_max_ma=3.0, power_max_mw=8.0)
    _, source, _ = _source(n=2, limits=limits)
    cases = {
        "not a finite number": [0.0, float("nan")],
        "below the minimum -1 V": [-1.5, 0.0],
        "above the maximum 4 V": [0.0, 4.5],
        r"current 3\.5 mA exceeds 3 mA": [3.5, 0.0],  # 12.25 mW too, but current is named first
        r"power 8\.41 mW exceeds 8 mW": [2.9, 0.0],
    }
    for fragment, bad in cases.items():
        with pytest.raises(LimitViolation, match=fragment + r".*row 1"):
            source.check_batch(torch.tensor([[0.0, 0.0], bad], dtype=torch.float64))


def test_project_at_a_float32_limit_is_accepted() -> None:
    """2.2 rounds up in float32; the projected float32 value must still pass the float64 check."""
    _, source, device = _source(n=3, limits=ChannelLimits(voltage=(0.0, 2.2), resistance_ohm=1000.0))
    projected = source.project(torch.tensor([5.0, 1.0, -1.0]))
    assert isinstance(projected, torch.Tensor) and projected.dtype == torch.float32
    assert float(projected[0]) <= 2.2 < float(torch.tensor(2.2))
    assert float(projected[0]) > 2.2 - 1e-6  # one float32 ulp inside, not a coarse margin
    assert projected[1:].tolist() == [1.0, 0.0]
    source.set_vector(projected)
    assert device.outputs[0] == float(projected[0])


def test_project_is_the_euclidean_nearest_point() -> None:
    """On the budget ball alone the nearest point is the radial one; on a neighbour slab, the midpoint move."""
    _, source, _ = _source(n=2, budget=8.0)
    projected = source.project(np.array([4.0, 4.0]))  # 32 mW; the ball has radius 2√2 V
    np.testing.assert_allclose(projected, [2.0, 2.0], rtol=1e-9)
    _, source, _ = _source(n=2, neighbour=1.0)
    np.testing.assert_allclose(source.project(np.array([1.0, 3.0])), [1.5, 2.5], rtol=1e-12)


def test_project_holds_fixed_channels() -> None:
    _, source, _ = _source(n=3, neighbour=1.0)
    held = np.array([-np.inf, 0.0, -np.inf]), np.array([np.inf, 0.0, np.inf])
    projected = source.project(np.array([3.0, 2.0, 3.0]), lower=held[0], upper=held[1])
    np.testing.assert_allclose(projected, [1.0, 0.0, 1.0], rtol=1e-9)


_LIMITS = st.builds(
    ChannelLimits,
    voltage=st.tuples(st.floats(-3.0, 0.0), st.floats(0.1, 5.0)),
    resistance_ohm=st.sampled_from([500.0, 1000.0, 1337.0]),
    current_max_ma=st.one_of(st.none(), st.floats(0.5, 5.0)),
    power_max_mw=st.one_of(st.none(), st.floats(0.3, 20.0)),
) | st.builds(ChannelLimits, voltage=st.tuples(st.floats(-3.0, 0.0), st.floats(0.1, 5.0)))


@settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=_LIMITS,
    neighbour=st.one_of(st.none(), st.floats(0.05, 3.0)),
    budget=st.one_of(st.none(), st.floats(0.3, 40.0)),
    points=arrays(np.float64, (4, 5), elements=st.floats(-10.0, 10.0)),
    float32=st.booleans(),
)
def test_projected_points_validate_bit_for_bit(
    limits: ChannelLimits, neighbour: float | None, budget: float | None, points: np.ndarray, float32: bool
) -> None:
    guard, source, device = _source(
        n=5, neighbour=neighbour, budget=budget, limits=limits, other=None if budget is None else 0.5
    )
    rows = torch.tensor(points, dtype=torch.float32) if float32 else points
    projected = source.project_batch(rows)
    values = projected.double().numpy() if isinstance(projected, torch.Tensor) else projected
    source.check_batch(values)  # the batch path accepts every row
    for row, original in zip(values, points, strict=True):
        guard.validate(source, row)  # and the single-point path each alone, in float64
        source.set_vector(row)
        np.testing.assert_array_equal(device.outputs, row)
        single = source.project(original)
        assert isinstance(single, np.ndarray)
        guard.validate(source, single)
        if source.rules.first_breach(original.reshape(1, -1), guard.budget_for(source)) is None:
            np.testing.assert_array_equal(single, original)  # an allowed point is its own projection


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    neighbour=st.one_of(st.none(), st.floats(0.2, 3.0)),
    budget=st.one_of(st.none(), st.floats(1.0, 40.0)),
    rows=arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)), elements=st.floats(-1.0, 5.0)),
)
def test_check_batch_refuses_exactly_when_some_row_alone_is_refused(
    neighbour: float | None, budget: float | None, rows: np.ndarray
) -> None:
    limits = ChannelLimits(voltage=(0.0, 4.0), resistance_ohm=1000.0, power_max_mw=9.0)
    guard, source, device = _source(n=4, neighbour=neighbour, budget=budget, limits=limits, other=0.5)
    refused_alone = []
    for row in rows:
        try:
            guard.validate(source, row)
            refused_alone.append(False)
        except LimitViolation:
            refused_alone.append(True)
    if any(refused_alone):
        first = refused_alone.index(True)
        with pytest.raises(LimitViolation, match=rf"row {first} of the batch"):
            source.check_batch(rows)
    else:
        source.check_batch(rows)
    assert device.writes == []
