"""Rule quality on real faults: replay SKAB valve1 or TEP through ingest, backtest library rules, score them.

SKAB protocol (the benchmark's): in each file the first 400 rows are the baseline (training) window and the
rest is scored; predictions of all files are scored together as binary classification per row: F1, FAR (false
alarm rate) and MAR (missed alarm rate). A row is predicted anomalous when it lies inside an alert's
``[at, end]``. One parameter set per rule for every file (no per-file tuning).

TEP protocol (``--dataset tep``, the Braatz data in ``../shared/data/tep``): each test run ``d00_te`` …
``d21_te`` is one device whose history is the normal training run ``d00`` (500 samples) followed by the test
run (960 samples), at the recorded 3-minute interval (timestamps are real 3-minute steps from 2026-01-01).
The baseline window is the ``d00`` part; the monitoring window is the test run. Per fault: detection rate
(DR, samples 161-960 alarmed), false-alarm rate (FAR, samples 1-160 alarmed) and detection delay (minutes
from the fault at sample 161 to the first alarm after it); FAR over all of ``d00_te``; F1 over all test
runs' samples pooled. Only the multivariate rules run (the univariate ones need a chosen key).

    .venv/bin/python bench/rule_quality.py [--dataset skab|tep] [--data DIR] [--json] [--database-url URL]

Without ``--database-url`` (or ``WORKBENCH_DATABASE_URL``) an embedded PostgreSQL is started in a temporary
folder. Each file replays as one pump (a device) sending its 8 keys every second, through the ingest
pipeline (validation, binary-COPY batch writer), with the recorded timestamps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.db.engine import libpq_url, make_engine  # noqa: E402
from workbench.db.migrate import upgrade  # noqa: E402
from workbench.notebooks.runner import NotebookRunner, run_notebook_rule  # noqa: E402
from workbench.settings import Settings  # noqa: E402

# ../shared/data beside the checkout (a git worktree under wt/ looks one level further up)
SHARED = next(
    (up / "shared" / "data" for up in ROOT.parents if (up / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
DEFAULT_DATA = SHARED / "skab" / "valve1"
TEP_DATA = SHARED / "tep"
BASELINE_ROWS = 400
TEP_STEP = pd.Timedelta(minutes=3)
TEP_START = pd.Timestamp("2026-01-01T00:00:00Z")
TEP_FAULT_AT = 160  # test runs: samples 1-160 normal, 161-960 faulty
TEP_HARD = (3, 9, 15)
FLOW = "Volume_Flow_RateRMS"
# The valve closes at the pump inlet: the flow rate is the process variable it moves, and it drops.
UNIVARIATE = {"keys": [FLOW], "side": "lower"}
RULES: dict[str, dict[str, Any]] = {
    "zscore": dict(UNIVARIATE),
    "ewma": dict(UNIVARIATE),
    "cusum": dict(UNIVARIATE),
    "western_electric": {"keys": [FLOW]},
    "changepoint": dict(UNIVARIATE),
    "hotelling_t2_q": {"keys": None},  # every sensor: the multivariate reference
    "pca_t2_q": {"keys": None},
    "dynamic_pca": {"keys": None},
    "knn_residual": {"keys": None},
}
MULTIVARIATE = ("hotelling_t2_q", "pca_t2_q", "dynamic_pca", "knn_residual")
NAMESPACE = uuid.UUID("5f6b8a52-5d7e-4c1e-9a51-3b0c2f1d7a10")


def key_name(column: str) -> str:
    """A SKAB column as a telemetry key (ingest keys allow no spaces)."""
    return column.split("(")[0].strip().replace(" ", "_")


def read_skab(path: Path) -> pd.DataFrame:
    """One SKAB file: UTC-indexed sensor columns (as keys) plus ``anomaly``."""
    frame = pd.read_csv(path, sep=";", parse_dates=["datetime"])
    frame.index = pd.DatetimeIndex(frame.pop("datetime")).tz_localize("UTC")
    frame.columns = [key_name(column) for column in frame.columns]
    return frame


def files_in(folder: Path) -> list[Path]:
    """SKAB-format CSV files of a folder, in numeric order when the names are numbers."""
    files = [path for path in folder.glob("*.csv")]
    return sorted(
        files, key=lambda path: (not path.stem.isdigit(), int(path.stem) if path.stem.isdigit() else 0)
    )


def register_devices(
    engine: Any, names: dict[uuid.UUID, str], kind: str = "pump", area: str = "skab"
) -> None:
    """Create (or reuse) one device per file and forget telemetry of earlier replays."""
    from sqlalchemy import text

    with engine.begin() as conn:
        for ident, name in names.items():
            conn.execute(
                text(
                    "INSERT INTO devices (id, name, type, area) VALUES (:id, :name, :kind, :area) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {"id": ident, "name": name, "kind": kind, "area": area},
            )
            conn.execute(text("DELETE FROM telemetry WHERE device_id = :id"), {"id": ident})


def replay(settings: Settings, frames: dict[uuid.UUID, pd.DataFrame]) -> str:
    """Send every file through the ingest pipeline (or binary COPY when ingest is unavailable)."""
    assert settings.database_url
    try:
        from ingest.pipeline import Pipeline
        from ingest.points import Reading
        from workbench.live.bus import EventBus
    except ImportError:
        copy_rows(settings.database_url, frames)
        return "binary COPY (ingest pipeline unavailable)"
    engine = make_engine(settings.database_url, pool_size=2)
    pipeline = Pipeline(replace(settings, ingest_max_age_days=36500), engine, EventBus())
    pipeline.start()
    done = threading.Event()
    try:
        chunks = []
        for ident, frame in frames.items():
            sensors = frame.drop(columns=["anomaly", "changepoint"], errors="ignore")
            readings = [
                Reading(str(ident), key, float(value), stamp.isoformat())
                for stamp, row in sensors.iterrows()
                for key, value in row.items()
            ]
            chunks += [readings[i : i + 5000] for i in range(0, len(readings), 5000)]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            result = pipeline.submit(chunk, "bench", done.set if last else None)
            if result.rejected:
                raise RuntimeError(f"ingest rejected readings: {result.rejected[:3]}")
        if not done.wait(120):
            raise RuntimeError("ingest did not commit the replay within 120 s")
    finally:
        pipeline.stop()
        engine.dispose()
    return "ingest pipeline (validation, binary-COPY batch writer)"


def copy_rows(database_url: str, frames: dict[uuid.UUID, pd.DataFrame]) -> None:
    """Binary COPY straight into telemetry (the writer's own path, without validation)."""
    import psycopg

    statement = "COPY telemetry (timestamp, device_id, key, value) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(libpq_url(database_url)) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(["timestamptz", "uuid", "varchar", "float8"])
        for ident, frame in frames.items():
            sensors = frame.drop(columns=["anomaly", "changepoint"], errors="ignore")
            for stamp, row in sensors.iterrows():
                for key, value in row.items():
                    copy.write_row((stamp.to_pydatetime(), ident, key, float(value)))


def predicted(index: pd.DatetimeIndex, alerts: list[Any]) -> pd.Series:
    """Rows inside any alert's ``[at, end]``."""
    flags = pd.Series(False, index=index)
    for alert in alerts:
        end = alert.end or alert.at
        flags.loc[(index >= pd.Timestamp(alert.at)) & (index <= pd.Timestamp(end))] = True
    return flags


def score(truth: pd.Series, guess: pd.Series) -> dict[str, float]:
    """F1, FAR and MAR (percent) of a binary prediction."""
    t, g = truth.astype(bool), guess.astype(bool)
    tp, fp = int((t & g).sum()), int((~t & g).sum())
    fn, tn = int((t & ~g).sum()), int((~t & ~g).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "f1": round(f1, 3),
        "far": round(100 * fp / max(fp + tn, 1), 2),
        "mar": round(100 * fn / max(fn + tp, 1), 2),
    }


def evaluate(
    runner: NotebookRunner,
    frames: dict[uuid.UUID, pd.DataFrame],
    rules: tuple[str, ...] = tuple(RULES),
    baseline_rows: int = BASELINE_ROWS,
    step: pd.Timedelta = pd.Timedelta(seconds=1),
) -> list[dict[str, Any]]:
    """Backtest rules over every file; one score per rule over all files together (``guesses`` per file)."""
    results = []
    for rule in rules:
        parameters = RULES[rule]
        truths, guesses, failures, started = [], [], [], time.perf_counter()
        for ident, frame in frames.items():
            scored = frame.index[baseline_rows:]
            params = dict(
                parameters,
                baseline_start=frame.index[0].isoformat(),
                baseline_end=scored[0].isoformat(),
            )
            result = run_notebook_rule(
                runner,
                f"rules/{rule}.ipynb",
                params,
                ident,
                scored[0],
                scored[-1] + step,
                dry_run=True,
            )
            if not result.ok:
                failures.append(result.error)
            truths.append(frame["anomaly"].iloc[baseline_rows:].astype(bool))
            guesses.append(predicted(scored, result.alerts))
        figures = score(pd.concat(truths, ignore_index=True), pd.concat(guesses, ignore_index=True))
        results.append(
            {
                "rule": rule,
                **figures,
                "seconds": round(time.perf_counter() - started, 2),
                "errors": failures,
                "guesses": guesses,
            }
        )
    return results


def read_tep(folder: Path) -> dict[str, pd.DataFrame]:
    """Each test run as a device history: ``d00`` (the baseline) then the run, 3 minutes apart."""
    train = pd.read_csv(folder / "d00.csv.gz")
    frames = {}
    for name in ["d00_te", *[f"d{fault:02d}_te" for fault in range(1, 22)]]:
        run = pd.read_csv(folder / f"{name}.csv.gz")
        both = pd.concat([train, run], ignore_index=True)
        frame = both.drop(columns=["sample", "fault"]).astype(float)
        frame["anomaly"] = both["fault"].to_numpy() * (np.arange(len(both)) >= len(train))
        frame.index = pd.DatetimeIndex(TEP_START + TEP_STEP * np.arange(len(both)))
        frames[name] = frame
    return frames


def tep_figures(names: list[str], result: dict[str, Any], baseline_rows: int) -> dict[str, Any]:
    """Per fault DR, FAR and delay (minutes); FAR on d00_te; mean DR without the hard faults."""
    per: dict[str, dict[str, float | None]] = {}
    for name, guess in zip(names, result["guesses"], strict=True):
        flags = guess.to_numpy()
        if name == "d00_te":
            per[name] = {"dr": None, "far": round(float(flags.mean()), 3), "delay_min": None}
            continue
        hits = np.flatnonzero(flags[TEP_FAULT_AT:])
        per[name] = {
            "dr": round(float(flags[TEP_FAULT_AT:].mean()), 3),
            "far": round(float(flags[:TEP_FAULT_AT].mean()), 3),
            "delay_min": float(hits[0] * 3) if len(hits) else None,
        }
    kept = [f"d{fault:02d}_te" for fault in range(1, 22) if fault not in TEP_HARD]
    return {
        "rule": result["rule"],
        "f1": result["f1"],
        "mean_dr": round(float(np.mean([per[name]["dr"] for name in kept])), 3),  # type: ignore[arg-type]
        "d00_te_far": per["d00_te"]["far"],
        "per_fault": per,
        "errors": result["errors"],
        "seconds": result["seconds"],
    }


def main() -> None:
    """Parse arguments, replay, evaluate, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("skab", "tep"), default="skab")
    parser.add_argument("--data", type=Path, help="folder of SKAB-format CSV files (or of the TEP files)")
    parser.add_argument("--json", action="store_true", help="print one JSON line of the figures per rule")
    parser.add_argument("--database-url", default=os.environ.get("WORKBENCH_DATABASE_URL"))
    parser.add_argument(
        "--rule", action="append", choices=sorted(RULES), help="only these rules (repeatable)"
    )
    parser.add_argument(
        "--side",
        choices=("lower", "both"),
        default="lower",
        help="univariate rules watch for a drop in flow (lower, the valve's effect) or any shift (both)",
    )
    args = parser.parse_args()
    tep = args.dataset == "tep"
    data = args.data or (TEP_DATA if tep else DEFAULT_DATA)
    rules = tuple(args.rule or (MULTIVARIATE if tep else RULES))
    if tep and not set(rules) <= set(MULTIVARIATE):
        parser.error(f"on TEP only the multivariate rules run: {', '.join(MULTIVARIATE)}")
    server = None
    url = args.database_url
    if not url:
        from workbench.db.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="wb-bench-pg-")) / "postgres")
        url = server.start()
    try:
        upgrade(url)
        settings = Settings.from_env(
            {}, database_url=url, data_dir=Path(tempfile.mkdtemp(prefix="wb-bench-"))
        )
        if tep:
            runs = read_tep(data)
            frames = {uuid.uuid5(NAMESPACE, f"tep/{name}"): frame for name, frame in runs.items()}
            names = {ident: f"tep-{name}" for ident, name in zip(frames, runs, strict=True)}
            kind, baseline_rows, step = ("plant", "tep"), len(next(iter(runs.values()))) - 960, TEP_STEP
        else:
            files = files_in(data)
            if not files:
                parser.error(f"no CSV files in {data}")
            frames = {uuid.uuid5(NAMESPACE, str(path.resolve())): read_skab(path) for path in files}
            names = {
                ident: f"skab-{data.name}-{path.stem}" for ident, path in zip(frames, files, strict=True)
            }
            kind, baseline_rows, step = ("pump", "skab"), BASELINE_ROWS, pd.Timedelta(seconds=1)
        engine = make_engine(url, pool_size=1)
        register_devices(engine, names, *kind)
        for parameters in RULES.values():
            if "side" in parameters:
                parameters["side"] = args.side
        began = time.perf_counter()
        path_used = replay(settings, frames)
        replay_s = time.perf_counter() - began
        runner = NotebookRunner(settings, engine=engine, root=ROOT)
        try:
            results = evaluate(runner, frames, rules, baseline_rows, step)
        finally:
            runner.close()
            engine.dispose()
    finally:
        if server is not None:
            server.stop()
    sample = next(iter(frames.values()))
    keys = len(sample.columns.difference(["anomaly", "changepoint"]))
    rows = sum(len(frame) for frame in frames.values())
    replayed = (
        f"{len(frames)} devices, {rows} rows x {keys} keys replayed via {path_used} in {replay_s:.1f} s"
    )
    if tep:
        report_tep([tep_figures(list(runs), row, baseline_rows) for row in results], replayed, args.json)
        return
    if args.json:
        print(json.dumps([{key: row[key] for key in ("rule", "f1", "far", "mar")} for row in results]))
        return
    print(f"{replayed} from {data}")
    print(f"baseline: first {BASELINE_ROWS} rows of each file; scored: the rest, all files together")
    print(f"univariate rules watch {FLOW}, side={args.side}; multivariate rules watch all 8 sensors")
    print(f"{'rule':<18} {'F1':>6} {'FAR %':>7} {'MAR %':>7} {'seconds':>8}")
    for row in sorted(results, key=lambda item: -item["f1"]):
        print(
            f"{row['rule']:<18} {row['f1']:>6.3f} {row['far']:>7.2f} {row['mar']:>7.2f} "
            f"{row['seconds']:>8.2f}"
        )
        for error in row["errors"][:2]:
            print(f"    error: {error}")
    print("reference (published, full SKAB): T²+Q 0.76, Conv-AE 0.78, MSET 0.78")


def report_tep(figures: list[dict[str, Any]], replayed: str, as_json: bool) -> None:
    """Print the TEP table: per fault DR / FAR / delay for each rule, then the summary lines."""
    if as_json:
        print(json.dumps(figures))
        return
    print(replayed)
    print("baseline: d00 (500 samples); monitored: each test run; fault from sample 161 (8 h)")
    print("fault " + " ".join(f"{row['rule']:>26}" for row in figures))
    print("      " + " ".join(f"{'DR':>8} {'FAR':>6} {'delay m':>10}" for _ in figures))
    for fault in range(1, 22):
        name = f"d{fault:02d}_te"
        cells = []
        for row in figures:
            item = row["per_fault"][name]
            delay = "-" if item["delay_min"] is None else f"{item['delay_min']:.0f}"
            cells.append(f"{item['dr']:>8.3f} {item['far']:>6.3f} {delay:>10}")
        print(f"{fault:>5} " + " ".join(cells))
    for row in figures:
        print(
            f"{row['rule']}: mean DR without 3, 9, 15 {row['mean_dr']:.3f}; "
            f"FAR on d00_te {row['d00_te_far']:.3f}; "
            f"pooled F1 {row['f1']:.3f}; {row['seconds']:.1f} s"
        )
        for error in row["errors"][:2]:
            print(f"    error: {error}")
    print("reference (tep/README.md, PCA T²|Q, 99th percentile): mean DR 0.849, FAR on d00_te 0.167")


if __name__ == "__main__":
    main()
