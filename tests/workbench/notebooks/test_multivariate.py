"""The numpy statistics behind the multivariate rules: baseline limits, alarm logic, contributions."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.notebooks import multivariate as mv

MIXING = np.array([[1.0, 0.8, 0.6, -0.5, 0.9], [0.2, -0.7, 1.0, 0.9, 0.6]])  # two factors drive five sensors


def correlated(rows: int, seed: int) -> np.ndarray:
    """Samples of the same process (same factor structure), noise drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, 2)) @ MIXING + 0.2 * rng.standard_normal((rows, 5))


def test_persistence_needs_k_of_n() -> None:
    flags = np.array([1, 0, 1, 0, 0, 1, 1, 1, 0], dtype=bool)
    assert mv.persistent(flags, 2, 3).tolist() == [False, False, True, False, False, False, True, True, True]
    assert mv.persistent(flags, 1, 1).tolist() == flags.tolist()


def test_ewma_starts_from_the_given_level() -> None:
    out = mv.ewma(np.array([3.0, 3.0]), span=3, start=1.0)
    assert out.tolist() == [2.0, 2.5]
    assert mv.ewma(np.array([5.0, 1.0]), span=1).tolist() == [5.0, 1.0]


def test_lagged_stacks_previous_samples() -> None:
    x = np.arange(8.0).reshape(4, 2)
    assert mv.lagged(x, 1).tolist() == [[2, 3, 0, 1], [4, 5, 2, 3], [6, 7, 4, 5]]


def test_parallel_analysis_keeps_the_real_factors() -> None:
    model = mv.fit_model([correlated(400, 0)], mv.Settings())
    assert model.loadings is not None and model.loadings.shape[1] == 2


def test_limits_are_cross_validated_not_in_sample() -> None:
    baseline = correlated(500, 1)
    monitor = mv.fit(baseline, mv.Settings(span=1, quantile=1.0))
    in_sample = monitor.model.raw(baseline)[0]
    # held-out blocks score worse than the samples the model saw: limits above the in-sample maximum
    assert monitor.limits["q"] > in_sample["q"].max() * 0.9
    assert set(monitor.limits) == {"t2", "q"}


@pytest.mark.parametrize(
    "settings", [mv.Settings(), mv.Settings(lags=2), mv.Settings(method="knn")], ids=["pca", "dpca", "knn"]
)
def test_a_broken_correlation_is_flagged_and_blamed_on_its_sensor(settings: mv.Settings) -> None:
    baseline, normal = correlated(500, 2), correlated(400, 3)
    monitor = mv.fit(baseline, settings)
    assert (monitor.score(normal).ratio > 1).mean() <= 0.03  # about the limits' design rate
    faulty = normal.copy()
    faulty[200:, 4] += 1.5
    scores = monitor.score(faulty)
    flagged = scores.ratio > 1
    assert flagged[:200].mean() <= 0.03 and flagged[220:].mean() > 0.9
    names = [f"s{i}" for i in range(5)]
    assert mv.top(scores.contributions[220:], names)[0][0] == "s4"
    assert np.allclose(scores.contributions.sum(axis=1), 1.0)


def test_a_short_baseline_is_refused() -> None:
    with pytest.raises(ValueError, match="baseline needs"):
        mv.fit(correlated(6, 4), mv.Settings())
    with pytest.raises(ValueError):
        mv.Settings(method="lstm")


def test_parallel_analysis_is_cached_per_shape() -> None:
    first = mv.parallel_analysis(50, 4)
    assert mv.parallel_analysis(50, 4) is first and not first.flags.writeable
    assert first[0] > 1 > first[-1]


def wandering(rows: int, seed: int) -> np.ndarray:
    """Five independent sensors, each a slow AR(1) process around zero (no shared factor)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((rows, 5))
    out = np.zeros_like(noise)
    for i in range(1, rows):
        out[i] = 0.7 * out[i - 1] + noise[i]
    return out


@pytest.mark.parametrize("method", ["pca", "knn"])
def test_a_frozen_sensor_is_caught_by_its_spread_and_named(method: str) -> None:
    baseline, monitored = wandering(600, 5), wandering(600, 6)
    monitored[300:, 2] = 0.0  # a stuck valve: the reading freezes at its usual level, the mean does not move
    names = [f"s{i}" for i in range(5)]
    without = mv.fit(baseline, mv.Settings(method=method)).score(monitored)
    # the mean statistics see nothing: the other sensors carry on and the frozen one sits at its mean
    assert (without.ratio[340:] > 1).mean() < 0.2
    monitor = mv.fit(baseline, mv.Settings(method=method, spread_span=20))
    assert set(monitor.limits) >= {"spread"}
    scores = monitor.score(monitored)
    flagged = scores.ratio > 1
    assert flagged[:300].mean() <= 0.05 and flagged[340:].mean() > 0.95
    assert mv.top(scores.contributions[340:], names)[0][0] == "s2"


def test_a_noisier_sensor_raises_its_spread() -> None:
    baseline, monitored = wandering(600, 7), wandering(600, 8)
    rng = np.random.default_rng(9)
    monitored[300:, 4] += 3.0 * rng.standard_normal(300)  # an oscillating or loose sensor: more variance
    monitor = mv.fit(baseline, mv.Settings(spread_span=20))
    spread = monitor.score(monitored).statistics["spread"] / monitor.limits["spread"]
    assert (spread[:300] > 1).mean() <= 0.05 and (spread[340:] > 1).mean() > 0.9


def test_spread_of_a_constant_baseline_sensor_stays_finite() -> None:
    baseline = wandering(300, 10)
    baseline[:, 1] = 4.0  # a sensor that never changed in the baseline (a setpoint)
    scores = mv.fit(baseline, mv.Settings(spread_span=20)).score(wandering(100, 11))
    assert np.isfinite(scores.ratio).all() and np.isfinite(scores.contributions).all()
