#!/usr/bin/env python
"""Forecasting throughput: N synthetic series on W Celery workers against one process.

    .venv/bin/python bench/forecast.py                    # 500 series, 2 workers
    .venv/bin/python bench/forecast.py --quick            # 40 series: a smoke run
    .venv/bin/python bench/forecast.py --series 200 --workers 2 --with-backtest

Each series is 30 days of hourly values (``--days``): a daily sine plus a linear trend plus
Gaussian noise, its level, amplitude, phase, trend and noise drawn from a generator seeded with
``--seed`` + its index, so every run and both modes see the very same series. The work per
series is what the forecast task runs without the database: ``forecasting.model.fit_predict``
(prophet fitted by MAP optimisation, then ``--horizon`` steps forecast with the predictive
sample paths its intervals and early warning are read from), and with ``--with-backtest`` also
``forecasting.backtest.backtest`` (the rolling-origin backtest stored with each run: a few more
prophet fits). The database side of a run (reading the series, storing the run and its
RiskAssessment) is not measured here.

In the same run, one after the other:

- one process: the bench fits the N series one after another in its own process;
- workers: W real ``celery worker`` processes (``--pool solo``: one task at a time each, so W
  is the number of series fitted at once), started by the bench on the Redis broker
  (``--broker-url``) with a queue of their own (``bench-forecast-<pid>``, so no other worker
  takes its tasks nor it theirs), each in a session of its own as a worker run as a service is
  (with Linux's autogroup scheduling, CPU is shared between sessions first: workers left in
  the bench's session would split one session's share on a busy machine); each warms up with
  one fit before the clock starts. The bench queues one task per series and waits for every
  result.

On a busy shared machine, ``--nice -10`` (as root) runs the bench, its workers and their
scheduler groups at that nice value, as ``crud.py --nice`` does; ``--repeat N`` alternates the
modes N times and shows the medians.

Printed, for each mode (each round with ``--repeat N``, the modes alternated, then the medians
of the rounds): series per minute; the median and p90 wall time of fit + predict per series;
the median CPU time of fit + predict (the process's own and that of the Stan optimiser it runs
as a child process: steadier than wall time on a busy machine); the backtest's median with
``--with-backtest``. Then the peak resident memory of the one process and of each worker (the
``ru_maxrss`` each reports with its results), the speed-up (series per minute of the workers ÷
of the one process), the load average before and after, and the targets. Both modes
run numpy and the Stan optimiser with one thread (``OMP_NUM_THREADS=1`` and the like), so the
speed-up is that of processes, not of threads. Exit status 1 if a series failed.

Targets (issue 6): median fit + predict ≤ 0.3 s per series, speed-up ≥ 1.8 with 2 workers,
≤ 400 MB per worker.
"""

from __future__ import annotations

import os

# One thread per process for numpy's BLAS and anything using OpenMP, in both modes; set before
# numpy is imported (workers inherit it).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "STAN_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from celery import Celery  # noqa: E402
from celery.signals import worker_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_BROKER = "redis://127.0.0.1:6379/10"
START = datetime(2026, 10, 28, tzinfo=UTC)

app = Celery("bench_forecast")
app.conf.update(
    broker_url=os.environ.get("BENCH_FORECAST_BROKER", DEFAULT_BROKER),
    result_backend=os.environ.get("BENCH_FORECAST_BROKER", DEFAULT_BROKER),
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
)


def make_series(index: int, seed: int, days: int) -> list[tuple[datetime, float | None]]:
    """Series ``index``: hourly, ``days`` long, daily sine + trend + noise, reproducible."""
    rng = random.Random(seed + index)
    level = rng.uniform(60, 90)
    amplitude = rng.uniform(3, 12)
    phase = rng.uniform(0, 2 * math.pi)
    trend = rng.uniform(-0.02, 0.02)  # per hour
    noise = rng.uniform(0.5, 3)
    return [
        (
            START + timedelta(hours=h),
            round(
                level
                + amplitude * math.sin(2 * math.pi * h / 24 + phase)
                + trend * h
                + rng.gauss(0, noise),
                2,
            ),
        )
        for h in range(days * 24)
    ]


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (prophet runs Stan's optimiser as
    a child process per fit), user and system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def forecast_one(
    index: int, seed: int, days: int, horizon: int, samples: int, with_backtest: bool
) -> dict[str, Any]:
    """What one series costs: fit + predict, and the backtest when asked. No database."""
    from forecasting.backtest import backtest
    from forecasting.model import HOURLY, fit_predict

    history = make_series(index, seed, days)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    fit_predict(history, HOURLY, horizon, samples=samples)
    fit = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    checked = None
    if with_backtest:
        started = time.perf_counter()
        backtest(history, HOURLY)
        checked = time.perf_counter() - started
    return {
        "index": index,
        "fit": fit,
        "cpu": cpu,
        "backtest": checked,
        "pid": os.getpid(),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


@app.task(name="bench_forecast.forecast_one")
def forecast_task(
    index: int, seed: int, days: int, horizon: int, samples: int, with_backtest: bool
) -> dict[str, Any]:
    return forecast_one(index, seed, days, horizon, samples, with_backtest)


def warm_up(horizon: int, samples: int) -> None:
    """Import prophet and load its Stan model: the first fit of a process is slower."""
    # cmdstanpy gives its logger an INFO handler on first use unless it has one: give it one.
    stan_log = logging.getLogger("cmdstanpy")
    stan_log.addHandler(logging.NullHandler())
    stan_log.setLevel(logging.WARNING)
    forecast_one(-1, 0, 3, horizon, samples, False)


@worker_ready.connect
def _worker_warm(sender=None, **_kwargs) -> None:
    ready_dir = os.environ.get("BENCH_FORECAST_READY")
    if not ready_dir:
        return
    warm_up(int(os.environ["BENCH_FORECAST_HORIZON"]), int(os.environ["BENCH_FORECAST_SAMPLES"]))
    Path(ready_dir, f"{os.getpid()}.ready").touch()


# --- the two modes ------------------------------------------------------------------------


def one_process(args) -> tuple[float, list[dict[str, Any]]]:
    warm_up(args.horizon, args.samples)
    started = time.perf_counter()
    results = [
        forecast_one(i, args.seed, args.days, args.horizon, args.samples, args.with_backtest)
        for i in range(args.series)
    ]
    return time.perf_counter() - started, results


def start_workers(args, queue: str, ready_dir: str) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
        "BENCH_FORECAST_BROKER": args.broker_url,
        "BENCH_FORECAST_READY": ready_dir,
        "BENCH_FORECAST_HORIZON": str(args.horizon),
        "BENCH_FORECAST_SAMPLES": str(args.samples),
    }
    procs = []
    for i in range(args.workers):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "forecast",
                    "worker",
                    "--pool",
                    "solo",
                    "-Q",
                    queue,
                    "-n",
                    f"{queue}-{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT / "bench",
                env=env,
                # A session of its own, as a worker run as its own service has: with autogroup
                # scheduling (Linux) the CPU is shared between sessions first, and workers left
                # in the bench's session would share one session's CPU between them.
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=None if args.verbose else subprocess.DEVNULL,
            )
        )
    if args.nice is not None:
        for proc in procs:
            renice(proc.pid, args.nice)
    deadline = time.monotonic() + 180
    while len(list(Path(ready_dir).glob("*.ready"))) < args.workers:
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            stop_workers(procs)
            raise SystemExit("the Celery workers did not start (run with --verbose to see why)")
        time.sleep(0.2)
    return procs


def renice(pid: int | str, nice: int) -> None:
    """``pid`` (``self``: the bench) and its session's scheduler group at ``nice``."""
    sys.path.insert(0, str(ROOT / "bench"))
    from crud import set_autogroup_nice  # bench/ is not a package

    os.setpriority(os.PRIO_PROCESS, 0 if pid == "self" else int(pid), nice)
    set_autogroup_nice(pid, nice)


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def purge(queue: str) -> None:
    # The queue may never have been declared: nothing to purge then.
    with app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(queue)


def on_workers(args) -> tuple[float, list[dict[str, Any]], list[str]]:
    queue = f"bench-forecast-{os.getpid()}"
    ready_dir = tempfile.mkdtemp(prefix="bench-forecast-")
    procs = start_workers(args, queue, ready_dir)
    failures: list[str] = []
    results: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        pending = [
            forecast_task.apply_async(
                (i, args.seed, args.days, args.horizon, args.samples, args.with_backtest),
                queue=queue,
            )
            for i in range(args.series)
        ]
        for i, async_result in enumerate(pending):
            try:
                results.append(async_result.get(timeout=args.timeout))
            except Exception as error:  # reported; exit status 1
                failures.append(f"series {i}: {type(error).__name__}: {error}")
            async_result.forget()
        elapsed = time.perf_counter() - started
    finally:
        purge(queue)
        stop_workers(procs)
        shutil.rmtree(ready_dir, ignore_errors=True)
    return elapsed, results, failures


# --- report -------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


COLUMNS = ("series/min", "fit_median", "fit_p90", "cpu_median", "backtest_median")


def figures_of(elapsed: float, results: list[dict[str, Any]]) -> dict[str, float]:
    fits = [r["fit"] for r in results]
    checks = [r["backtest"] for r in results if r["backtest"] is not None]
    return {
        "series": len(results),
        "seconds": elapsed,
        "series/min": 60 * len(results) / elapsed if elapsed else 0.0,
        "fit_median": statistics.median(fits) if fits else math.nan,
        "fit_p90": quantile(fits, 0.9) if fits else math.nan,
        "cpu_median": statistics.median(r["cpu"] for r in results) if results else math.nan,
        "backtest_median": statistics.median(checks) if checks else math.nan,
    }


def header(with_backtest: bool) -> str:
    line = (
        f"{'mode':<18} {'series':>6} {'seconds':>8} {'series/min':>10} "
        f"{'fit+pred p50':>12} {'p90':>6} {'CPU p50':>8}"
    )
    return line + (f" {'backtest p50':>12}" if with_backtest else "")


def row(name: str, f: dict[str, float], with_backtest: bool) -> str:
    line = (
        f"{name:<18} {f['series']:>6.0f} {f['seconds']:>8.1f} {f['series/min']:>10.1f} "
        f"{f['fit_median']:>12.3f} {f['fit_p90']:>6.3f} {f['cpu_median']:>8.3f}"
    )
    return line + (f" {f['backtest_median']:>12.3f}" if with_backtest else "")


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Forecast N synthetic hourly series on W Celery workers and in one process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--series", type=int, default=500, help="series to forecast (N)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (W)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 series")
    parser.add_argument("--days", type=int, default=30, help="days of hourly values per series")
    parser.add_argument("--horizon", type=int, default=48, help="hours forecast (24-72)")
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="predictive sample paths (default: forecasting.model.DEFAULT_SAMPLES)",
    )
    parser.add_argument(
        "--with-backtest",
        action="store_true",
        help="also run the rolling-origin backtest of each series (timed apart)",
    )
    parser.add_argument("--seed", type=int, default=20261127, help="seed of series 0")
    parser.add_argument("--broker-url", default=DEFAULT_BROKER, help="Redis broker and backend")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait per result")
    parser.add_argument(
        "--modes",
        default="process,workers",
        help="which modes to run, comma-separated: process, workers",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        help="as root on a busy shared machine: the bench, its workers and their scheduler "
        "groups at this nice value (e.g. -10), as crud.py --nice",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of both modes, alternated; medians shown"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="the workers' stderr and each one's share"
    )
    args = parser.parse_args()
    if args.quick:
        args.series = 40
    if args.samples is None:
        from forecasting.model import DEFAULT_SAMPLES

        args.samples = DEFAULT_SAMPLES
    if not args.broker_url.startswith("redis://"):
        parser.error("--broker-url must be a redis:// URL (it is also the result backend)")
    app.conf.broker_url = app.conf.result_backend = args.broker_url
    modes = {m.strip() for m in args.modes.split(",") if m.strip()}

    own_group = None
    if args.nice is not None:
        own_group = Path("/proc/self/autogroup").read_text().split("nice")[1].strip()
        renice("self", args.nice)
    print(
        f"{args.series} series of {args.days} days hourly, horizon {args.horizon} h, "
        f"{args.samples} sample paths{', with backtest' if args.with_backtest else ''}; "
        f"{os.cpu_count()} CPUs; load average before: {load()}"
    )
    print(header(args.with_backtest))
    rounds: dict[str, list[dict[str, float]]] = {"process": [], "workers": []}
    failures: list[str] = []
    memory: dict[str, float] = {}
    suffix = ""
    for n in range(args.repeat):
        if args.repeat > 1:
            suffix = f", round {n + 1}"
        if "process" in modes:
            elapsed, results = one_process(args)
            rounds["process"].append(figures_of(elapsed, results))
            print(row("one process" + suffix, rounds["process"][-1], args.with_backtest))
            memory["one process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if "workers" in modes:
            elapsed, results, failed = on_workers(args)
            failures += failed
            rounds["workers"].append(figures_of(elapsed, results))
            name = f"{args.workers} workers" + suffix
            print(row(name, rounds["workers"][-1], args.with_backtest))
            peaks: dict[int, float] = {}
            for r in results:
                peaks[r["pid"]] = max(peaks.get(r["pid"], 0.0), r["rss_mb"])
            for i, pid in enumerate(sorted(peaks)):
                count = sum(1 for r in results if r["pid"] == pid)
                key = f"worker {i + 1}"
                memory[key] = max(memory.get(key, 0.0), peaks[pid])
                if args.verbose:
                    print(f"  {key}: pid {pid}, {count} series, {peaks[pid]:.0f} MB")
    figures = {mode: median_of(r) for mode, r in rounds.items() if r}
    if args.repeat > 1:
        print(f"median of {args.repeat} rounds:")
        if "process" in figures:
            print(row("one process", figures["process"], args.with_backtest))
        if "workers" in figures:
            print(row(f"{args.workers} workers", figures["workers"], args.with_backtest))
    print("peak resident memory (MB), ru_maxrss as each process reported it:")
    for name, mb in memory.items():
        print(f"  {name:<12} {mb:>6.0f}")
    # The speed-up of each round (its two modes ran minutes apart, under the same load at best),
    # then their median: a ratio of medians would pair a busy round's mode with a quiet one's.
    ratios = [
        w["series/min"] / p["series/min"]
        for p, w in zip(rounds["process"], rounds["workers"], strict=False)
        if p["series/min"]
    ]
    speedup = statistics.median(ratios) if ratios else None
    if speedup is not None:
        each = f" (rounds: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
        print(f"speed-up, {args.workers} workers ÷ one process (series/min): {speedup:.2f}{each}")
    print(f"load average after: {load()}")
    if own_group is not None:
        Path("/proc/self/autogroup").write_text(own_group)
    fit = figures.get("process", figures.get("workers", {})).get("fit_median")
    worker_peak = max(
        (mb for name, mb in memory.items() if name.startswith("worker")), default=None
    )
    print("targets (issue 6):")
    if fit is not None:
        print(
            f"  median fit + predict ≤ 0.3 s (one process): {fit:.3f} s "
            f"{'met' if fit <= 0.3 else 'NOT met'}"
        )
    if speedup is not None:
        print(
            f"  speed-up ≥ 1.8 with 2 workers: {speedup:.2f} "
            f"{'met' if speedup >= 1.8 else 'NOT met'}{'' if args.workers == 2 else ' (W ≠ 2)'}"
        )
    if worker_peak is not None:
        print(
            f"  ≤ 400 MB per worker: {worker_peak:.0f} MB "
            f"{'met' if worker_peak <= 400 else 'NOT met'}"
        )
    for failure in failures:
        print("FAILED", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
