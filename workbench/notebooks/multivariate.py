"""Multivariate statistics for rule notebooks: PCA T²/Q, dynamic PCA and a k-nearest-neighbour residual.

Plain numpy, so the rules in ``rules/`` share one tested implementation. A monitor is fitted on a baseline
(rows = samples, columns = sensors) and scores new samples as a *ratio to the control limit*: above 1 is out
of control. Every choice comes from the baseline only:

- standardization: the baseline mean and standard deviation of each sensor;
- PCA components: parallel analysis (the eigenvalues above those of i.i.d. noise of the same shape) or a share
  of variance; dynamic PCA stacks each sample with its ``lags`` predecessors first;
- control limits: **cross-validated on the baseline**. The baseline is cut into ``folds`` contiguous blocks;
  each block is scored by a model fitted on the other blocks, smoothed like monitoring data, and the limit of
  each statistic is the ``quantile`` of those held-out values. In-sample limits are too tight (the model has
  seen the samples), and a baseline rarely covers all normal variation; held-out blocks measure both.

Alarm logic is part of the rule, not of the data: each statistic is smoothed by an EWMA of span ``span``
samples before it is compared, and :func:`persistent` keeps a flag only when ``k`` of the last ``n`` samples
are out of control. Two per-sensor statistics can join T² and Q (or the knn residual): ``drift`` (each
sensor's own EWMA, for sustained shifts the controls absorb) and ``spread`` (each sensor's short-term
variability against its baseline: oscillation, noise, a frozen reading). Contributions
(:attr:`Scores.contributions`) split each sample's statistic over the sensors, so an alert can name the
sensors that drive it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

METHODS = ("pca", "knn")
PRESMOOTHED = frozenset({"drift", "spread"})  # statistics built from an EWMA already: not smoothed again
CHUNK = 256  # rows scored at once by the k-nearest-neighbour model (bounds its distance matrix)


@dataclass(frozen=True)
class Settings:
    """One parameter set of a multivariate rule (the same for every device and dataset)."""

    method: str = "pca"  # "pca" (T² and Q) or "knn" (similarity residual, MSET-like)
    lags: int = 0  # dynamic PCA: each sample is stacked with this many previous samples
    components: float | str = "parallel"  # "parallel" analysis, or a share of variance such as 0.9
    neighbours: int = 10  # knn: baseline samples the estimate is built from
    span: float = 20.0  # EWMA span (samples) applied to each statistic; 1 = none
    quantile: float = 1.0  # control limit: this quantile of the cross-validated baseline statistic
    margin: float = 1.0  # the limit is multiplied by this (1 = the cross-validated quantile itself)
    folds: int = 5  # contiguous baseline blocks used for the cross-validated limits
    drift_span: float = 0.0  # > 0: also watch each sensor's EWMA (this span) for a sustained shift
    drift_margin: float = 2.0  # margin of the drift statistic's limit
    spread_span: float = 0.0  # > 0: also watch each sensor's short-term variability (EWMA of squared steps)
    spread_margin: float = 1.5  # margin of the spread statistic's limit

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        if self.lags < 0 or self.neighbours < 1 or self.folds < 2 or not 0 < self.quantile <= 1:
            raise ValueError("lags >= 0, neighbours >= 1, folds >= 2 and 0 < quantile <= 1 are required")


@dataclass
class Scores:
    """Monitoring result: ratio to the limit per sample and per-sensor contributions."""

    ratio: np.ndarray  # (samples,) max over the statistics of smoothed statistic / limit
    statistics: dict[str, np.ndarray]  # each smoothed statistic, same length
    contributions: np.ndarray  # (samples, sensors) share of the ratio each sensor explains (rows sum to 1)


@dataclass
class Model:
    """A fitted model (standardization, PCA or reference set) without limits."""

    settings: Settings
    mean: np.ndarray
    scale: np.ndarray
    loadings: np.ndarray | None = None  # PCA: (columns, components)
    eigen: np.ndarray | None = None  # PCA: variances of the kept components
    reference: np.ndarray | None = None  # knn: standardized baseline samples
    step_level: np.ndarray | None = None  # spread: each column's mean squared step on the baseline
    step_scale: np.ndarray | None = None  # spread: each column's spread (log ratio) deviation on the baseline

    def raw(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Unsmoothed statistics and per-column squared contributions of lagged samples ``x``."""
        z = (x - self.mean) / self.scale
        stats: dict[str, np.ndarray] = {}
        parts: dict[str, np.ndarray] = {}
        if self.settings.method == "knn":
            assert self.reference is not None
            residual = z - knn_estimate(self.reference, z, self.settings.neighbours)
            stats["residual"], parts["residual"] = (residual**2).sum(axis=1), residual**2
        else:
            assert self.loadings is not None and self.eigen is not None
            scores = z @ self.loadings
            residual = z - scores @ self.loadings.T
            # T² contribution of a column: z_j (P Λ⁻¹ t)_j (they sum to T²); negative parts clipped
            t2_parts = z * ((scores / self.eigen) @ self.loadings.T)
            stats["t2"], parts["t2"] = (scores**2 / self.eigen).sum(axis=1), np.clip(t2_parts, 0, None)
            stats["q"], parts["q"] = (residual**2).sum(axis=1), residual**2
        if self.settings.drift_span > 0:
            # a sustained shift of one sensor that the controls or the model absorb: its own EWMA, squared
            shifted = ewma_rows(z, self.settings.drift_span, start=np.zeros(z.shape[1])) ** 2
            stats["drift"], parts["drift"] = shifted.max(axis=1), shifted
        if self.settings.spread_span > 0:
            assert self.step_level is not None and self.step_scale is not None
            spread = (log_spread(z, self.step_level, self.settings.spread_span) / self.step_scale) ** 2
            stats["spread"], parts["spread"] = spread.max(axis=1), spread
        return stats, parts


@dataclass
class Monitor:
    """A fitted model with its cross-validated control limits."""

    model: Model
    limits: dict[str, float]
    sensors: int
    baseline_level: dict[str, float] = field(default_factory=dict)  # EWMA start value of each statistic
    calibration: dict[str, np.ndarray] = field(default_factory=dict)  # smoothed held-out baseline statistics

    @property
    def components(self) -> int:
        """Kept principal components (0 for the knn method)."""
        loadings = self.model.loadings
        return 0 if loadings is None else int(loadings.shape[1])

    def score(self, data: np.ndarray) -> Scores:
        """Score monitoring samples (rows); the first ``lags`` rows get the first full sample's values."""
        lags = self.model.settings.lags
        if len(data) <= lags:
            empty = np.zeros(len(data))
            return Scores(empty, {}, np.zeros((len(data), self.sensors)))
        stats, parts = self.model.raw(lagged(data, lags))
        span = self.model.settings.span
        smoothed = {
            name: smooth(name, value, span, self.baseline_level[name]) for name, value in stats.items()
        }
        ratios = np.vstack([smoothed[name] / self.limits[name] for name in smoothed])
        ratio = ratios.max(axis=0)
        # contributions of the statistic that is furthest out, smoothed like it, folded over the lags
        contrib = np.zeros((len(ratio), parts[next(iter(parts))].shape[1]))
        for row, name in enumerate(smoothed):
            mine = ratios.argmax(axis=0) == row
            share = parts[name] if name in PRESMOOTHED else ewma_rows(parts[name], span)
            contrib[mine] = share[mine]
        folded = contrib.reshape(len(ratio), lags + 1, self.sensors).sum(axis=1)
        total = folded.sum(axis=1, keepdims=True)
        folded = np.divide(folded, total, out=np.full_like(folded, 1 / self.sensors), where=total > 0)
        pad = lambda values: np.concatenate([np.repeat(values[:1], lags, axis=0), values])  # noqa: E731
        return Scores(pad(ratio), {name: pad(value) for name, value in smoothed.items()}, pad(folded))


def smooth(name: str, values: np.ndarray, span: float, start: float) -> np.ndarray:
    """A statistic smoothed for comparison (the drift statistic is an EWMA already)."""
    return values if name in PRESMOOTHED else ewma(values, span, start)


def lagged(x: np.ndarray, lags: int) -> np.ndarray:
    """Rows ``[x_t, x_{t-1}, …, x_{t-lags}]`` for t = lags … n-1 (dynamic PCA's stacked samples)."""
    if lags == 0:
        return x
    n = len(x)
    return np.hstack([x[lags - j : n - j] for j in range(lags + 1)])


def ewma(values: np.ndarray, span: float, start: float | None = None) -> np.ndarray:
    """Exponentially weighted moving average over ``span`` samples, from ``start`` (or the first value)."""
    if span <= 1 or len(values) == 0:
        return np.asarray(values, dtype=float)
    alpha = 2.0 / (span + 1.0)
    out = np.empty(len(values))
    level = float(values[0]) if start is None else start
    for i, value in enumerate(values):
        level += alpha * (value - level)
        out[i] = level
    return out


def ewma_rows(values: np.ndarray, span: float, start: np.ndarray | None = None) -> np.ndarray:
    """Column-wise EWMA of a 2-D array, starting from ``start`` (or the first row)."""
    if span <= 1 or len(values) == 0:
        return values
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(values, dtype=float)
    level = (values[0] if start is None else start).astype(float)
    for i in range(len(values)):
        level = level + alpha * (values[i] - level)
        out[i] = level
    return out


def log_spread(z: np.ndarray, level: np.ndarray, span: float) -> np.ndarray:
    """Log ratio of each column's short-term variability (EWMA of squared steps) to its baseline ``level``.

    Positive when a sensor becomes noisier or oscillates, negative when it freezes (a stuck valve, a
    stopped transmitter): changes of variance that leave the mean where it was."""
    steps = np.diff(z, axis=0, prepend=z[:1]) ** 2
    variability = ewma_rows(steps, span, start=level)
    return np.log(np.maximum(variability, 1e-3 * level) / level)


def persistent(flags: np.ndarray, k: int = 1, n: int = 1) -> np.ndarray:
    """True where at least ``k`` of the last ``n`` samples (this one included) are flagged."""
    flags = np.asarray(flags, dtype=bool)
    if n <= 1 or k <= 1:
        return flags
    counts = np.convolve(flags.astype(int), np.ones(n, dtype=int))[: len(flags)]
    return counts >= k


@functools.lru_cache(maxsize=64)
def parallel_analysis(rows: int, columns: int, draws: int = 20, seed: int = 0) -> np.ndarray:
    """Mean eigenvalues of the correlation matrix of i.i.d. normal data of this shape (descending).

    Cached per shape (seeded, so the same shape gives the same values): a rule evaluated again and again on
    the same baseline, in a warm kernel, pays for it once."""
    rng = np.random.default_rng(seed)
    total = np.zeros(columns)
    for _ in range(draws):
        noise = rng.standard_normal((rows, columns))
        noise = (noise - noise.mean(axis=0)) / noise.std(axis=0, ddof=1)
        total += np.sort(np.linalg.eigvalsh(np.cov(noise, rowvar=False)))[::-1]
    out = total / draws
    out.flags.writeable = False
    return out


def knn_estimate(reference: np.ndarray, z: np.ndarray, neighbours: int) -> np.ndarray:
    """Each row of ``z`` estimated as the inverse-distance-weighted mean of its nearest reference rows."""
    k = min(neighbours, len(reference))
    out = np.empty_like(z)
    ref_sq = (reference**2).sum(axis=1)
    for begin in range(0, len(z), CHUNK):
        part = z[begin : begin + CHUNK]
        dist = np.maximum((part**2).sum(axis=1)[:, None] + ref_sq[None, :] - 2 * part @ reference.T, 0)
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        weight = 1.0 / (np.sqrt(np.take_along_axis(dist, nearest, axis=1)) + 1e-6)
        out[begin : begin + CHUNK] = (reference[nearest] * weight[:, :, None]).sum(axis=1) / weight.sum(
            axis=1, keepdims=True
        )
    return out


def fit_model(pieces: list[np.ndarray], settings: Settings) -> Model:
    """Standardize and fit PCA (or keep the reference set) on baseline pieces (each lagged on its own)."""
    rows = np.vstack([lagged(piece, settings.lags) for piece in pieces if len(piece) > settings.lags])
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0, ddof=1)
    scale = np.where(scale > 1e-9 * np.maximum(np.abs(mean), 1.0), scale, 1.0)
    z = (rows - mean) / scale
    spread: dict[str, np.ndarray] = {}
    if settings.spread_span > 0:
        standardized = [(lagged(piece, settings.lags) - mean) / scale for piece in pieces if len(piece) > 1]
        steps = np.vstack([np.diff(piece, axis=0) ** 2 for piece in standardized])
        level = np.maximum(steps.mean(axis=0), 1e-6)
        deviation = np.vstack([log_spread(piece, level, settings.spread_span) for piece in standardized])
        spread = {"step_level": level, "step_scale": np.maximum(deviation.std(axis=0), 1e-3)}
    if settings.method == "knn":
        return Model(settings, mean, scale, reference=z, **spread)
    eigen, vectors = np.linalg.eigh(np.cov(z, rowvar=False))
    order = np.argsort(eigen)[::-1]
    eigen, vectors = np.maximum(eigen[order], 1e-12), vectors[:, order]
    if settings.components == "parallel":
        above = eigen > parallel_analysis(*z.shape)
        kept = int(np.cumprod(above).sum())
    else:
        share = float(settings.components)
        kept = int(np.searchsorted(np.cumsum(eigen) / eigen.sum(), share) + 1)
    kept = max(1, min(kept, z.shape[1] - 1))
    return Model(settings, mean, scale, loadings=vectors[:, :kept], eigen=eigen[:kept], **spread)


def fit(baseline: np.ndarray, settings: Settings | None = None) -> Monitor:
    """Fit a monitor on baseline rows (samples x sensors), limits cross-validated over contiguous blocks."""
    settings = settings or Settings()
    baseline = np.asarray(baseline, dtype=float)
    sensors = baseline.shape[1]
    minimum = settings.folds * (settings.lags + 2)
    if len(baseline) < max(minimum, 3):
        raise ValueError(f"the baseline needs at least {max(minimum, 3)} samples, it has {len(baseline)}")
    model = fit_model([baseline], settings)
    edges = np.linspace(0, len(baseline), settings.folds + 1).astype(int)
    held: dict[str, list[np.ndarray]] = {}
    for i in range(settings.folds):
        block = baseline[edges[i] : edges[i + 1]]
        rest = [baseline[: edges[i]], baseline[edges[i + 1] :]]
        stats, _ = fit_model(rest, settings).raw(lagged(block, settings.lags))
        for name, value in stats.items():
            held.setdefault(name, []).append(value)
    level = {name: float(np.median(np.concatenate(parts))) for name, parts in held.items()}
    calibration = {
        name: np.concatenate([smooth(name, part, settings.span, level[name]) for part in parts])
        for name, parts in held.items()
    }
    return Monitor(model, control_limits(calibration, settings), sensors, level, calibration)


def control_limits(calibration: dict[str, np.ndarray], settings: Settings) -> dict[str, float]:
    """Each statistic's limit: ``margin`` x its ``quantile`` over the held-out baseline values."""
    limits = {
        name: float(
            {"drift": settings.drift_margin, "spread": settings.spread_margin}.get(name, settings.margin)
            * np.quantile(values, settings.quantile)
        )
        for name, values in calibration.items()
    }
    return {name: value if value > 0 else 1e-12 for name, value in limits.items()}


def top(contributions: np.ndarray, names: list[str], count: int = 3) -> list[tuple[str, float]]:
    """The ``count`` sensors with the largest mean contribution over the given rows, with their shares."""
    share = np.atleast_2d(contributions).mean(axis=0)
    order = np.argsort(share)[::-1][:count]
    return [(names[i], round(float(share[i]), 3)) for i in order]
