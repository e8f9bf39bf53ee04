"""The worker's own CPU per news item, model excluded (issue 12), with a plain-loop contender.

On a GPU node the model is cheap; what caps a worker is the CPU its own event loop spends
per item. Measured here, per model (``--model tiny`` = the random test model of
``tests.support.tiny_model``, or a model dir), on its own tansu broker and Redis:

1. **Bare model.** ``load_worker_predictor`` with the worker's settings scores the timed
   texts in micro-batches of ``--batch-size`` in a one-thread executor (as ``ScoreStage``
   runs it), one untimed pass, then one timed: this process's CPU time (all threads,
   torch's included) per text, and texts/s. Measured before the worker starts and after
   the contenders stopped; the lower CPU and the higher rate are kept.
2. **Worker.** One ``finpulse worker`` process; ``--warmup`` items are drained first
   (model load, group join, padded shapes), then ``--n`` items (two tickers each, so
   4 entity events: 2 tickers, the topic, the market) are published in one go and
   drained through news -> scored -> windows/alerts (``finpulse_records_in_total`` and
   ``finpulse_entity_events_total`` reach their targets, polled on ``/metrics``). The
   worker's CPU is utime + stime from ``/proc/<pid>/stat`` over that interval. **Own CPU
   per item = worker CPU per item - bare model CPU per item.** Throughput = ``--n`` /
   the interval. The worker's idle CPU (heartbeats plus the same ``/metrics`` polling) is
   measured over ``--idle`` seconds before and reported, not subtracted.
   ``--score-overlap on off`` runs one worker of each kind back to back (fresh topics,
   the same feed), so the overlap of the model with publishing is measured in one run.
   ``--baseline DIR`` (the source tree of another revision, e.g. ``git archive 6c743aa |
   tar -x -C DIR``) runs one worker of that tree first, on the same feed, and reports
   the others' own CPU and throughput as ratios to it. The timed items follow the
   warm-up in event time, and ``--watermark-idle`` (0.5 s) shortens streaming v2's wait
   for quiet partitions at the end of a drained run (older trees ignore it).
3. **Plain aiokafka loop** (``bench.plain_loop``, its own process and consumer group) over
   the same news topic: getmany -> the same Predictor -> one JSON record per item ->
   await acks -> commit. Its own CPU per item and throughput, in the same run.

Torch gets ``--torch-threads`` (default 1) intra-op threads everywhere: with two threads
on a busy 2-core machine, OpenMP's spin-waiting burned 5-10x the tiny model's real CPU
(bare tiny model 2,650 us/text with 2 threads vs 270 with 1, load average 11), and that
spin differs between a bare loop and a worker, so the subtraction would measure noise.

Event times span ``--span`` seconds ending a minute ago, with ``allowed_lateness_seconds``
set above the span, so a multi-partition topic produces no late events before or after
issue 12's watermark change: the bench measures cost, not lateness handling.

``--profile DIR`` also records the worker with ``py-spy`` during the timed pass
(``--profile-format raw`` collapsed stacks for ``bench.profile_summary``, or
``flamegraph`` SVG); the sampler takes CPU too, so profiled numbers are marked.

    python -m bench.bench_worker_cpu --model tiny --n 8000 --json runs/bench_worker_cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench._common import (
    BenchError,
    Samples,
    bench_worker_env,
    headlines,
    markdown_table,
    print_footer,
    proc_cpu_seconds,
    proc_cpu_times,
    proc_thread_cpu,
    run_measured,
    scrape,
    total,
    wait_metrics,
    write_json,
    yes_no,
)
from stream_app.config import Settings
from stream_app.devenv.embedded import Service, start_broker, start_redis
from tests.support.worker_proc import WorkerProcess, produce

TARGET_OWN_US = 150.0
ENTITIES_PER_ITEM = 4  # two tickers, the topic, the market (stream_app.core.entities)


@dataclass
class ModelResult:
    model: str
    n: int
    bare_cpu_us: list[float] = field(default_factory=list)  # per text, each measurement
    bare_rate: list[float] = field(default_factory=list)  # texts/s
    worker_cpu_us: float = 0.0  # per item
    worker_sys_us: float = 0.0  # of which kernel time (stime)
    worker_threads_us: dict[str, float] = field(default_factory=dict)  # per thread, per item
    worker_rate: float = 0.0  # items/s, drained
    worker_wall_s: float = 0.0
    worker_idle_cpu_per_s: float = 0.0  # CPU-seconds per second while idle
    mean_batch: float = 0.0
    dead_letters: float = 0.0
    late_events: float = 0.0
    plain_cpu_us: float = 0.0
    plain_rate: float = 0.0
    profiled: bool = False
    baseline: bool = False  # the worker of ``--baseline``'s source tree

    @property
    def model_cpu_us(self) -> float:
        return min(self.bare_cpu_us)

    @property
    def own_us(self) -> float:
        return self.worker_cpu_us - self.model_cpu_us

    @property
    def plain_own_us(self) -> float:
        return self.plain_cpu_us - self.model_cpu_us


# --- the feed ----------------------------------------------------------------------------


def feed(
    texts: list[str], prefix: str, tickers: int, span_s: float, seed: int, end_ms: int
) -> tuple[list[bytes], list[bytes]]:
    """(keys, values): real headlines, two distinct tickers each, keyed by the first.

    Event times are sorted uniform draws over ``span_s`` ending at ``end_ms`` (a Poisson
    stream conditioned on its count), so per-partition order is event-time order.
    """
    rng = random.Random(seed)
    pool = [f"T{i:03d}" for i in range(tickers)]
    times = sorted(end_ms - int(rng.random() * span_s * 1000) for _ in texts)
    keys, values = [], []
    for i, (text, ms) in enumerate(zip(texts, times, strict=True)):
        pair = rng.sample(pool, 2)
        row = {"id": f"{prefix}{i}", "headline": text, "tickers": pair, "published_at": ms}
        keys.append(pair[0].encode())
        values.append(json.dumps(row).encode())
    return keys, values


# --- 1. the bare model -------------------------------------------------------------------


def bare_model(
    settings: Settings, texts: list[str], args: argparse.Namespace, desc: str
) -> tuple[float, float]:
    """(CPU seconds per text of this whole process, texts/s) over one timed pass."""
    import torch

    from stream_app.model import load_worker_predictor

    batch = args.batch_size
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    def passes() -> tuple[float, float]:
        predictor = load_worker_predictor(settings)
        for i in range(0, len(texts), batch):  # untimed: every padded shape seen once
            predictor.predict(texts[i : i + batch])
        with tqdm(total=len(texts), desc=desc, unit="text", file=sys.stderr) as bar:
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(0, len(texts), batch):
                bar.update(len(predictor.predict(texts[i : i + batch])))
            return time.process_time() - cpu, time.perf_counter() - wall

    with ThreadPoolExecutor(1, thread_name_prefix="bench-model") as pool:
        cpu_s, wall_s = pool.submit(passes).result()
    gc.collect()  # the predictor is garbage now; a worker starts next
    return cpu_s / len(texts), len(texts) / wall_s


# --- 2. the worker -------------------------------------------------------------------------


def _drained(records: float, events: float) -> Callable[[Samples], float]:
    """News consumed, held one short of ``records`` until ``events`` entity events are
    folded too: ``wait_metrics(..., records)`` shows progress and waits for both."""

    def done(samples: Samples) -> float:
        consumed = total(samples, "finpulse_records_in_total")
        folded = total(samples, "finpulse_entity_events_total") + total(
            samples, "finpulse_dead_letters_total", reason="invalid_event"
        )
        return consumed if folded >= events else min(consumed, records - 1)

    return done


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, read with ``py-spy dump`` (``{}`` without it).

    Python 3.11 does not name OS threads, so ``/proc`` alone cannot tell Faust's consumer
    thread from the model's executor thread.
    """
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        out = subprocess.run(
            [exe, "dump", "--pid", str(pid), "--nonblocking"],
            capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names: dict[int, str] = {}
    for line in out.splitlines():  # Thread 13846 (idle): "Thread-1"
        if line.startswith("Thread ") and '"' in line:
            tid = line.split()[1]
            if tid.isdigit():
                names[int(tid)] = line.split('"')[1]
    return names


class _Profiler:
    """``py-spy record`` attached to the worker for the timed pass (``--nonblocking``)."""

    def __init__(self, pid: int, out: Path, fmt: str, rate: int) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        argv = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", fmt,
                "--threads", "--nonblocking", "-o", str(out)]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.out = out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        _, err = self.proc.communicate(timeout=60)
        if not self.out.exists():
            raise BenchError(f"py-spy wrote no profile: {err.decode(errors='replace')[-2000:]}")


async def run_worker(
    worker: WorkerProcess,
    warm: tuple[list[bytes], list[bytes]],
    timed: tuple[list[bytes], list[bytes]],
    args: argparse.Namespace,
    res: ModelResult,
    profile_to: Path | None,
) -> None:
    from stream_app.service.broker import ensure_topics

    s = worker.settings
    w, n = len(warm[0]), len(timed[0])
    await ensure_topics(s)  # else tansu auto-creates news with its own partition count
    await produce(s, warm[1], keys=warm[0])
    worker.start(timeout=args.start_timeout)
    assert worker.proc is not None
    await wait_metrics(worker, _drained(w, w * ENTITIES_PER_ITEM), w, args.timeout, "warm-up")

    pid = worker.proc.pid
    idle_cpu = proc_cpu_seconds(pid)
    idle_at = time.perf_counter()
    while time.perf_counter() - idle_at < args.idle:  # the same polling as when draining
        scrape(worker.base_url)
        await asyncio.sleep(0.1)
    res.worker_idle_cpu_per_s = (proc_cpu_seconds(pid) - idle_cpu) / (time.perf_counter() - idle_at)
    before = scrape(worker.base_url)

    profiler = None
    if profile_to is not None:
        profiler = _Profiler(pid, profile_to, args.profile_format, args.profile_rate)
    (user0, sys0), wall0 = proc_cpu_times(pid), time.time()
    threads0 = proc_thread_cpu(pid)
    try:
        await produce(s, timed[1], keys=timed[0])
        drained = _drained(w + n, (w + n) * ENTITIES_PER_ITEM)
        done_at = await wait_metrics(worker, drained, w + n, args.timeout, "timed pass")
        user1, sys1 = proc_cpu_times(pid)
        threads1 = proc_thread_cpu(pid)
        names = thread_names(pid)
    finally:
        if profiler is not None:
            profiler.stop()
    res.profiled = profiler is not None
    res.worker_wall_s = done_at - wall0
    res.worker_cpu_us = (user1 + sys1 - user0 - sys0) / n * 1e6
    res.worker_sys_us = (sys1 - sys0) / n * 1e6
    for tid, cpu in sorted(threads1.items(), key=lambda kv: -kv[1]):
        used = (cpu - threads0.get(tid, 0.0)) / n * 1e6
        if used >= 1.0:
            native = "native threads (torch, tokenizers)"
            name = names.get(tid, "MainThread" if tid == pid else native)
            res.worker_threads_us[name] = res.worker_threads_us.get(name, 0.0) + used
    res.worker_rate = n / res.worker_wall_s

    after = scrape(worker.base_url)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    scored = delta("finpulse_scored_total")
    if scored != n:
        raise BenchError(f"{scored:.0f}/{n} timed items scored; worker log:\n{worker.log_tail()}")
    batches = delta("finpulse_batch_size_count", agent="score")
    res.mean_batch = delta("finpulse_batch_size_sum", agent="score") / max(1.0, batches)
    res.dead_letters = delta("finpulse_dead_letters_total")
    res.late_events = delta("finpulse_late_events_total")


# --- 3. the plain loop ---------------------------------------------------------------------


def run_plain(worker: WorkerProcess, warm_n: int, n: int, args: argparse.Namespace,
              res: ModelResult) -> None:  # fmt: skip
    """``bench.plain_loop`` over the worker's news topic, in its own consumer group."""
    s = worker.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update(worker.env)
    argv = [sys.executable, "-m", "bench.plain_loop", "--topic", s.topic_news,
            "--out", f"{s.topic_scored}-plain", "--group", f"{s.app_id}-plain",
            "--warmup", str(warm_n), "--n", str(n), "--batch", str(args.batch_size)]  # fmt: skip
    print("plain aiokafka loop: running", file=sys.stderr)
    done = subprocess.run(argv, env=env, capture_output=True, timeout=args.timeout)
    if done.returncode != 0:
        raise BenchError(f"plain loop failed:\n{done.stderr.decode(errors='replace')[-4000:]}")
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    res.plain_cpu_us = out["cpu_s"] / out["items"] * 1e6
    res.plain_rate = out["items"] / out["wall_s"]


# --- one model, all contenders -------------------------------------------------------------


async def measure(
    label: str, model_dir: Path, broker: Service, redis: Service, args: argparse.Namespace,
    workdir: Path,
) -> list[ModelResult]:  # fmt: skip
    """Bare model, one worker per ``--score-overlap`` value (fresh topics each), the plain
    loop (over the first worker's news topic), bare model again: one result per worker."""
    texts = headlines(args.warmup + args.n)
    # The timed items follow the warm-up in event time (a live stream), ending a minute ago.
    end_ms = int((time.time() - 60) * 1000)
    span_ms = int(args.span * 1000)
    warm = feed(texts[: args.warmup], "wu-", args.tickers, args.span, args.seed, end_ms - span_ms)
    timed = feed(texts[args.warmup :], "tp-", args.tickers, args.span, args.seed + 1, end_ms)
    timed_texts = texts[args.warmup :]
    workers: list[tuple[str, WorkerProcess]] = []
    trees: list[Path | None] = [args.baseline] if args.baseline else []
    for tree, overlap in [(t, None) for t in trees] + [
        (None, o) for o in args.score_overlap or [None]
    ]:
        extra: dict[str, str | int | float] = {
            "allowed_lateness_seconds": 2 * int(args.span) + 600,
            "broker_session_timeout": 6,
            # streaming v2 releases the last events once every news partition has been
            # quiet this long; a drained run ends with that wait (older trees ignore it)
            "watermark_idle_seconds": args.watermark_idle,
        }
        if overlap is not None:
            extra["score_overlap"] = str(overlap == "on").lower()
        env = bench_worker_env(broker, redis, model_dir, args, "bench-cpu", **extra)
        if args.torch_threads:
            env["OMP_NUM_THREADS"] = str(args.torch_threads)  # read by the worker and plain_loop
        name = label if overlap is None else f"{label}, overlap {overlap}"
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
            name = f"{label}, baseline {tree.name}"
        log_name = f"worker-{env['FINPULSE_APP_ID']}.log"
        workers.append((name, WorkerProcess(env, workdir / log_name, cwd=tree)))
    settings = workers[-1][1].settings

    bare = [bare_model(settings, timed_texts, args, f"{label}: bare model [1/2]")]
    results = []
    for name, worker in workers:
        res = ModelResult(model=name, n=args.n, baseline=worker.cwd is not None)
        profile_to = None
        if args.profile is not None:
            safe = name.replace(", ", "-").replace(" ", "-")
            profile_to = args.profile / f"worker-{safe}.{_ext(args.profile_format)}"
        try:
            await run_worker(worker, warm, timed, args, res, profile_to)
        except AssertionError as exc:  # WorkerProcess.start: exited or never healthy
            raise BenchError(str(exc)) from None
        finally:
            worker.stop()
        results.append(res)
    if not args.no_plain:
        run_plain(workers[0][1], args.warmup, args.n, args, results[0])
    bare.append(bare_model(settings, timed_texts, args, f"{label}: bare model [2/2]"))
    for res in results:
        res.bare_cpu_us = [cpu * 1e6 for cpu, _ in bare]
        res.bare_rate = [rate for _, rate in bare]
    return results


def _ext(fmt: str) -> str:
    return {"flamegraph": "svg", "speedscope": "json"}.get(fmt, "txt")


def markdown(results: list[ModelResult], args: argparse.Namespace) -> str:
    rows: list[list[Any]] = []

    def row(label: str, value: str, target: str = "", met: str = "") -> None:
        rows.append([label, value, target, met])

    base = next((r for r in results if r.baseline), None)
    for r in results:
        m, mark = r.model, " *(profiled)*" if r.profiled else ""
        runs = ", ".join(f"{x:.0f}" for x in r.bare_cpu_us)
        row(f"**{m}**: bare model CPU per text (runs {runs})", f"{r.model_cpu_us:.0f} us")
        row(f"{m}: worker process CPU per item (of which kernel){mark}",
            f"{r.worker_cpu_us:.0f} us ({r.worker_sys_us:.0f})")  # fmt: skip
        own_ok = yes_no(r.own_us <= TARGET_OWN_US)
        row(f"{m}: **worker's own CPU per item** (worker - bare model){mark}",
            f"**{r.own_us:.0f} us**", f"<= {TARGET_OWN_US:.0f} us", own_ok)  # fmt: skip
        for thread, us in r.worker_threads_us.items():
            row(f"{m}: &nbsp; of which thread `{thread}`", f"{us:.0f} us")
        row(f"{m}: worker drained throughput (mean score batch {r.mean_batch:.1f})",
            f"{r.worker_rate:.0f} items/s")  # fmt: skip
        row(f"{m}: bare model throughput (best)", f"{max(r.bare_rate):.0f} texts/s")
        row(f"{m}: worker drained / bare model", f"{r.worker_rate / max(r.bare_rate):.2f}x")
        row(f"{m}: worker idle CPU (heartbeats + /metrics polls)",
            f"{r.worker_idle_cpu_per_s * 1000:.0f} ms/s")  # fmt: skip
        if base is not None and r is not base and base.own_us > 0:
            row(f"{m}: **own CPU per item vs {base.model}**", f"**{r.own_us / base.own_us:.2f}x**")
            row(f"{m}: drained throughput vs {base.model}",
                f"{r.worker_rate / base.worker_rate:.2f}x")  # fmt: skip
        if r.plain_rate:
            row(f"{m}: plain aiokafka loop own CPU per item", f"{r.plain_own_us:.0f} us")
            vs = r.plain_rate / r.worker_rate
            row(f"{m}: plain aiokafka loop throughput", f"{r.plain_rate:.0f} items/s ({vs:.2f}x)")
    header = [
        f"measure (n={args.n} items, 2 tickers each, {args.partitions} partitions, "
        f"batch {args.batch_size})",
        "value",
        "target",
        "met",
    ]
    return markdown_table(header, rows)


async def run_all(args: argparse.Namespace, workdir: Path) -> list[ModelResult]:
    broker = start_broker(workdir / "broker")
    redis = None
    try:
        redis = start_redis(workdir / "redis")
        results = []
        for spec in args.model:
            if spec == "tiny":
                from tests.support.tiny_model import make_tiny_model_dir

                label, model_dir = "tiny", make_tiny_model_dir(workdir / "tiny-model")
            else:
                label, model_dir = Path(spec).name, Path(spec)
            results += await measure(label, model_dir, broker, redis, args, workdir)
        return results
    finally:
        if redis is not None:
            redis.stop()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--model", action="append", default=None, help="'tiny' or a model dir (repeatable)"
    )
    parser.add_argument("--n", type=int, default=8000, help="timed news items")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed news items first")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-max-wait", type=float, default=0.25)
    parser.add_argument("--tickers", type=int, default=200, help="ticker pool size")
    parser.add_argument("--span", type=float, default=3000.0, help="event-time span, seconds")
    parser.add_argument("--idle", type=float, default=3.0, help="idle CPU sample, seconds")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--quantize", default="auto", choices=("auto", "on", "off"))
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads in the worker, the plain loop and the bare model "
        "(0: torch's default); see the module docstring",
    )
    parser.add_argument(
        "--score-overlap",
        nargs="+",
        choices=("on", "off"),
        default=None,
        help="FINPULSE_SCORE_OVERLAP of the worker; 'on off' runs one worker of each, "
        "back to back on the same feed (default: the worker's own default)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="source tree of another revision (e.g. `git archive 6c743aa | tar -x -C DIR`): "
        "one worker of that tree runs first on the same feed; ratios to it are reported",
    )
    parser.add_argument(
        "--watermark-idle",
        type=float,
        default=0.5,
        help="FINPULSE_WATERMARK_IDLE_SECONDS of the worker (the wait after the last item)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plain", action="store_true", help="skip the plain-loop contender")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the worker into DIR")
    parser.add_argument(
        "--profile-format", default="raw", choices=("raw", "flamegraph", "speedscope")
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase, seconds")
    parser.add_argument("--start-timeout", type=float, default=240.0, help="worker start, s")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    args.model = [m if m == "tiny" else str(Path(m).resolve()) for m in args.model or ["tiny"]]
    if args.n < args.batch_size or args.warmup < args.batch_size:
        parser.error("--n and --warmup must be at least --batch-size")
    for spec in args.model:
        if spec != "tiny" and not (Path(spec) / "manifest.json").is_file():
            parser.error(f"--model {spec}: not a model dir (no manifest.json)")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    ok, results, info = run_measured("finpulse-bench-cpu-", lambda workdir: run_all(args, workdir))
    if not ok:
        return 1
    table = markdown(results, args)
    print(table)
    print()
    print_footer(info)
    if args.json:
        rows = [{**vars(r), "own_us": r.own_us, "model_cpu_us": r.model_cpu_us} for r in results]
        write_json(args.json, rows, info=info, markdown=table, args=vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
