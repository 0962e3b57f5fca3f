"""Choose the multivariate rules' one parameter set by leaving fault families out (offline, on the CSVs).

Runs the statistics of ``workbench/notebooks/multivariate.py`` (what the rule notebooks run) straight on the
files, without the platform, over a small grid per rule. Families: each TEP fault 1-21 is one family, SKAB
valve1 is one. For each family the parameter set is chosen on every *other* family (objective: mean of the
TEP detection rate over the kept faults and the SKAB F1, among the sets whose false-alarm rate is within
target on ``d00_te`` and on SKAB), then scored on the left-out family: those are the figures to report.
``bench/rule_quality.py`` then replays the final set through the platform.

    .venv/bin/python bench/rule_tuning.py [--rule pca_t2_q] [--json | --markdown] [--results FILE]

Protocols: TEP (``../shared/data/tep``): baseline ``d00`` (500 normal samples); each test run is scored from
sample 1, detection rate (DR) on samples 161-960, false-alarm rate (FAR) on samples 1-160 and on all of
``d00_te``; faults 3, 9 and 15 are out of the mean (undetectable by this family of monitors). SKAB valve1:
baseline = first 400 rows of each file, the rest scored, F1 and FAR over all files together.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.notebooks import multivariate as mv  # noqa: E402

# ../shared/data beside the checkout (a git worktree under wt/ looks one level further up)
DATA = next(
    (up / "shared" / "data" for up in ROOT.parents if (up / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
FAULTS = list(range(1, 22))
HARD = (3, 9, 15)
FAULT_START = 160  # test runs: samples 1-160 normal, 161-960 faulty
SKAB_BASELINE = 400
TEP_FAR_TARGET, SKAB_FAR_TARGET = 0.05, 0.15
GRIDS: dict[str, dict[str, list[Any]]] = {
    "pca_t2_q": {"lags": [0], "components": ["parallel", 0.9], "span": [10, 20]},
    "dynamic_pca": {"lags": [2], "components": [0.9], "span": [10, 20]},
    "knn_residual": {"method": ["knn"], "neighbours": [5, 20], "span": [10, 20]},
}
COMMON: dict[str, list[Any]] = {
    "drift_span": [100],  # 0 (off) lost fault 5 in earlier grids
    "spread_span": [20, 40],  # 0 (off) lost faults 10, 16, 19 and 21
    "quantile": [0.99, 1.0],
    "margin": [1.0, 1.2, 1.5],
    "drift_margin": [1.5, 2.0, 3.0],
    "spread_margin": [1.0, 1.5, 2.0],
    "persistence": [(1, 1), (3, 5)],
}


@dataclass(frozen=True)
class Candidate:
    """A parameter set: the statistics' settings and the k-of-n persistence."""

    settings: mv.Settings
    persistence: tuple[int, int]

    def describe(self) -> dict[str, Any]:
        """Parameters as the notebook names them."""
        out = {key: value for key, value in asdict(self.settings).items() if key != "folds"}
        return out | {"k": self.persistence[0], "n": self.persistence[1]}


def load_tep() -> dict[str, np.ndarray]:
    """``d00``, ``d00_te`` and ``dXX_te`` as arrays of the 52 variables."""
    names = ["d00", "d00_te", *[f"d{fault:02d}_te" for fault in FAULTS]]
    return {name: pd.read_csv(DATA / "tep" / f"{name}.csv.gz").iloc[:, 1:53].to_numpy() for name in names}


def load_skab() -> list[tuple[np.ndarray, np.ndarray]]:
    """SKAB valve1 files: (8 sensors, anomaly label)."""
    files = sorted((DATA / "skab" / "valve1").glob("*.csv"), key=lambda path: int(path.stem))
    out = []
    for path in files:
        frame = pd.read_csv(path, sep=";")
        out.append((frame.iloc[:, 1:9].to_numpy(), frame["anomaly"].to_numpy().astype(bool)))
    return out


def alarms(monitor: mv.Monitor, statistics: dict[str, np.ndarray], candidate: Candidate) -> np.ndarray:
    """Alarm per sample under the candidate's limits: a smoothed statistic above its limit, then k of n."""
    limits = mv.control_limits(monitor.calibration, candidate.settings)
    ratio = np.max([statistics[name] / limits[name] for name in statistics], axis=0)
    return mv.persistent(ratio > 1.0, *candidate.persistence)


def evaluate_all(group: list[Candidate], tep: dict[str, np.ndarray], skab: list[Any]) -> list[dict[str, Any]]:
    """Figures of candidates that share their model (they differ only in limits and persistence).

    Per fault: DR, FAR and delay (samples from 161 to the first alarm) on TEP; FAR on d00_te; pooled F1,
    FAR and MAR on SKAB.
    """
    monitor = mv.fit(tep["d00"], group[0].settings)
    runs = {name: monitor.score(data).statistics for name, data in tep.items() if name != "d00"}
    skab_runs = []
    for data, label in skab:
        local = mv.fit(data[:SKAB_BASELINE], group[0].settings)
        skab_runs.append((local, local.score(data[SKAB_BASELINE:]).statistics, label[SKAB_BASELINE:]))
    out = []
    for candidate in group:
        per: dict[int, dict[str, float]] = {}
        for fault in FAULTS:
            alarm = alarms(monitor, runs[f"d{fault:02d}_te"], candidate)
            hits = np.flatnonzero(alarm[FAULT_START:])
            per[fault] = {
                "dr": float(alarm[FAULT_START:].mean()),
                "far": float(alarm[:FAULT_START].mean()),
                "delay": float(hits[0]) if len(hits) else float("nan"),
            }
        normal = float(alarms(monitor, runs["d00_te"], candidate).mean())
        t = np.concatenate([label for _, _, label in skab_runs])
        g = np.concatenate([alarms(local, stats, candidate) for local, stats, _ in skab_runs])
        tp, fp, fn = int((t & g).sum()), int((~t & g).sum()), int((t & ~g).sum())
        skab_figures = {
            "f1": 2 * tp / max(2 * tp + fp + fn, 1),
            "far": fp / max(int((~t).sum()), 1),
            "mar": fn / max(int(t.sum()), 1),
        }
        out.append({"tep": per, "d00_te_far": normal, "skab": skab_figures})
    return out


def objective(result: dict[str, Any], faults: list[int], with_skab: bool) -> float:
    """Mean DR over ``faults``, averaged with the SKAB F1 when SKAB is used."""
    score = float(np.mean([result["tep"][fault]["dr"] for fault in faults])) if faults else 0.0
    return (score + result["skab"]["f1"]) / 2 if with_skab else score


def choose(
    results: list[tuple[Candidate, dict[str, Any]]], faults: list[int], with_skab: bool
) -> tuple[Candidate, dict[str, Any]]:
    """The best set among those within the false-alarm targets (d00_te, and SKAB when used).

    A target no set of the grid meets is dropped (the F1 still counts the false alarms)."""
    pool = [item for item in results if item[1]["d00_te_far"] <= TEP_FAR_TARGET] or results
    if with_skab:
        pool = [item for item in pool if item[1]["skab"]["far"] <= SKAB_FAR_TARGET] or pool
    return max(pool, key=lambda item: objective(item[1], faults, with_skab))


def candidates(rule: str) -> list[Candidate]:
    """The grid of one rule."""
    grid = GRIDS[rule] | COMMON
    out = []
    for values in itertools.product(*grid.values()):
        chosen = dict(zip(grid, values, strict=True))
        persistence = chosen.pop("persistence")
        if not chosen["drift_span"] and chosen["drift_margin"] != grid["drift_margin"][0]:
            continue  # without the drift statistic its margin changes nothing
        if not chosen["spread_span"] and chosen["spread_margin"] != grid["spread_margin"][0]:
            continue  # nor the spread statistic's
        out.append(Candidate(mv.Settings(**chosen), persistence))
    return out


def grouped(items: list[Candidate]) -> list[list[Candidate]]:
    """Candidates grouped by the model they fit (limits and persistence aside)."""
    groups: dict[mv.Settings, list[Candidate]] = {}
    for candidate in items:
        model = replace(candidate.settings, quantile=1.0, margin=1.0, drift_margin=1.0, spread_margin=1.0)
        groups.setdefault(model, []).append(candidate)
    return list(groups.values())


def leave_out(results: list[tuple[Candidate, dict[str, Any]]]) -> dict[str, Any]:
    """Per family, the set chosen without it and its figures on it; plus the set chosen on everything."""
    kept = [fault for fault in FAULTS if fault not in HARD]
    out: dict[str, Any] = {"tep": {}}
    for fault in FAULTS:
        others = [other for other in kept if other != fault]
        best_candidate, best = choose(results, others, True)
        out["tep"][fault] = best["tep"][fault] | {"chosen": best_candidate.describe()}
    best_candidate, best = choose(results, kept, False)
    out["skab"] = best["skab"] | {"chosen": best_candidate.describe()}
    final_candidate, final = choose(results, kept, True)
    out["final"] = {"chosen": final_candidate.describe(), "figures": final}
    out["left_out_mean_dr"] = float(np.mean([out["tep"][fault]["dr"] for fault in kept]))
    # the d00_te FAR the left-out choices would see (the largest over the sets chosen)
    out["left_out_d00_te_far"] = max(
        dict(results)[candidate]["d00_te_far"]
        for candidate in {Candidate(**to_candidate(out["tep"][fault]["chosen"])) for fault in FAULTS}
    )
    return out


def to_candidate(described: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :meth:`Candidate.describe`."""
    settings = {key: value for key, value in described.items() if key not in ("k", "n")}
    return {"settings": mv.Settings(**settings), "persistence": (described["k"], described["n"])}


def evaluated(
    rule: str, tep: dict[str, np.ndarray], skab: list[Any], cache: Path | None
) -> list[tuple[Candidate, dict[str, Any]]]:
    """Figures of every set of the rule's grid (from ``cache`` when it holds them)."""
    store: dict[str, Any] = json.loads(cache.read_text()) if cache and cache.exists() else {}
    if rule in store:
        return [
            (Candidate(**to_candidate(described)), fix_keys(figures)) for described, figures in store[rule]
        ]
    results = []
    for group in grouped(candidates(rule)):
        results += list(zip(group, evaluate_all(group, tep, skab), strict=True))
    if cache:
        store[rule] = [(candidate.describe(), figures) for candidate, figures in results]
        cache.write_text(json.dumps(store))
    return results


def fix_keys(figures: dict[str, Any]) -> dict[str, Any]:
    """JSON turned the fault numbers into strings: back to integers."""
    return figures | {"tep": {int(fault): value for fault, value in figures["tep"].items()}}


def main() -> None:
    """Evaluate each rule's grid, choose by leaving families out, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", choices=sorted(GRIDS), action="append")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="print the left-out table as in the README")
    parser.add_argument(
        "--results", type=Path, help="JSON file of evaluated sets: read if it exists, else written"
    )
    args = parser.parse_args()
    tep, skab = load_tep(), load_skab()
    report = {}
    for rule in args.rule or sorted(GRIDS):
        results = evaluated(rule, tep, skab, args.results)
        report[rule] = leave_out(results)
        if not args.json and not args.markdown:
            summary = report[rule]
            print(
                f"{rule}: left-out mean DR {summary['left_out_mean_dr']:.3f} (d00_te FAR ≤ "
                f"{summary['left_out_d00_te_far']:.3f}); SKAB left out: F1 {summary['skab']['f1']:.3f} "
                f"FAR {summary['skab']['far']:.3f}; final {summary['final']['chosen']}",
                flush=True,
            )
    if args.json:
        print(json.dumps(report, default=str))
    if args.markdown:
        print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    """The left-out figures as a Markdown table: a row per TEP fault, a column per rule, then summaries."""
    rules = list(report)
    lines = [
        "| fault | " + " | ".join(f"`{rule}` DR / FAR / delay" for rule in rules) + " |",
        "| ---: | " + " | ".join("---" for _ in rules) + " |",
    ]
    for fault in FAULTS:
        cells = []
        for rule in rules:
            row = report[rule]["tep"][fault]
            delay = "-" if np.isnan(row["delay"]) else f"{3 * row['delay']:.0f} min"  # 3-minute samples
            cells.append(f"{row['dr']:.3f} / {row['far']:.3f} / {delay}")
        lines.append(f"| {fault} | " + " | ".join(cells) + " |")
    summary = {
        "**mean DR without 3, 9, 15** (target >= 0.90)": lambda item: f"**{item['left_out_mean_dr']:.3f}**",
        "FAR on `d00_te` (largest of the sets chosen) (target <= 0.05)": lambda item: (
            f"{item['left_out_d00_te_far']:.3f}"
        ),
        "SKAB valve1 left out: F1 / FAR / MAR (target F1 >= 0.85, FAR <= 15 %)": lambda item: (
            f"{item['skab']['f1']:.3f} / {100 * item['skab']['far']:.1f} % / "
            f"{100 * item['skab']['mar']:.1f} %"
        ),
    }
    for label, cell in summary.items():
        lines.append(f"| {label} | " + " | ".join(cell(report[rule]) for rule in rules) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
