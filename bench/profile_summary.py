"""Where a profiled worker's time goes: py-spy collapsed stacks -> per-item costs by layer.

Reads the ``raw`` output of ``py-spy record --threads`` (one ``thread;frame;...;frame
count`` line per distinct stack, as ``bench.bench_worker_cpu --profile DIR`` writes it)
and prints four Markdown tables:

1. samples per thread (the event loop, the model thread, Faust's consumer thread...);
2. **self cost by layer**: each sample goes to the layer of the innermost frame that
   belongs to a named layer (pydantic, json, aiokafka, Faust/mode, redis, prometheus,
   aiohttp, finpulse core/store/service/schemas, the model), walking outwards; frames of
   the standard library's plumbing (asyncio, threading, selectors...) are skipped unless
   nothing else is on the stack, so ``loop.call_soon`` inside an aiokafka send counts
   as aiokafka;
3. the frames that decided each sample's layer, hottest first (self time per function);
4. inclusive cost of the heaviest functions (a function counted once per sample even
   when it recurses; entry points and loop plumbing left out).

Samples whose innermost frame is the event loop's ``select`` are waits, not CPU (py-spy
reports threads in ``epoll_wait`` as active on this machine's kernel) and are left out.
With ``--items N`` and ``--rate HZ`` samples become microseconds per item (one sample ~
1/HZ s; on an oversubscribed machine "active" includes waiting for a core or the GIL). Better:
``--thread MainThread --cpu-us X`` with X the thread's measured CPU per item from
``bench_worker_cpu``, which scales the shares to real CPU time.

    python -m bench.profile_summary runs/profile/worker-tiny.txt --items 8000 --rate 100 \\
        --cpu-us 1000
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import markdown_table

# (layer, path fragments), innermost match wins; order matters only inside one frame.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model (torch, tokenizer, predictor)", ("torch/", "transformers/", "tokenizers/",
                                             "models/predictor.py", "models/architecture.py")),
    ("pydantic (validate, dump)", ("pydantic/", "pydantic_core/", "stream_app/schemas.py")),
    ("json", ("json/",)),
    ("aiokafka (produce, fetch, protocol)", ("aiokafka/", "kafka/")),
    ("Faust / mode (streams, events, acks)", ("faust/", "mode/")),
    ("redis client", ("redis/",)),
    ("prometheus_client", ("prometheus_client/",)),
    ("aiohttp (web, /metrics)", ("aiohttp/", "yarl/", "multidict/")),
    ("logging", ("logging/",)),
    ("finpulse core (scoring, aggregator, windows)", ("stream_app/core/",)),
    ("finpulse store (Redis windows, Lua args)", ("stream_app/store/",)),
    ("finpulse service (stages, app)", ("stream_app/service/",)),
)  # fmt: skip
PLUMBING: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("asyncio event loop", ("asyncio/", "selectors.py", "socket.py", "ssl.py")),
    ("threads, executor", ("threading.py", "concurrent/")),
)
# Entry points and run loops: every sample of their thread passes through them. Faust's
# consumer runs in a ServiceThread with its own event loop (mode/threads.py).
_OUTER = ("<frozen", "finpulse/cli", "finpulse/__main__", "mode/worker.py", "mode/threads.py")
_OUTER_FUNCS = frozenset({"run_worker"})  # stream_app.service.app: runs the Faust worker
# py-spy decides "idle" from the thread's state, which on this kernel (gVisor-like
# sandboxes too) reads as running while a thread sits in epoll_wait: such leaves are waits.
_IDLE_LEAVES = frozenset({"EpollSelector.select", "PollSelector.select", "SelectSelector.select"})
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class Profile:
    samples: int = 0  # of the threads kept, idle ones left out
    idle: int = 0  # samples of the threads kept that were waiting in epoll (not CPU)
    threads: Counter[str] = field(default_factory=Counter)
    layers: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    hot: Counter[str] = field(default_factory=Counter)  # the frame that decided the layer


def _frame(raw: str) -> tuple[str, str]:
    m = _FRAME.match(raw)
    return (m["func"], m["file"]) if m else (raw, "")


def layer_of(frames: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(layer, deciding frame) of a sample: the innermost named layer, else plumbing."""
    fallback: tuple[str, str] | None = None
    for func, file in reversed(frames):
        if _entry(func, file):
            continue
        for name, parts in LAYERS:
            if any(p in file for p in parts):
                return name, f"{func} ({file})"
        if fallback is None:
            for name, parts in PLUMBING:
                if any(p in file for p in parts):
                    fallback = name, f"{func} ({file})"
                    break
    if fallback is None and frames:
        func, file = frames[-1]
        fallback = "other (interpreter, stdlib)", f"{func} ({file})"
    return fallback or ("other (interpreter, stdlib)", "?")


def _entry(func: str, file: str) -> bool:
    """Entry points every sample of a thread passes through: never a sample's layer."""
    return file.startswith(_OUTER) or func in _OUTER_FUNCS


def _outer(func: str, file: str) -> bool:
    """Entry points and loop plumbing: left out of the inclusive table (no information)."""
    return _entry(func, file) or any(p in file for _, parts in PLUMBING for p in parts)


def read(lines: Iterable[str], thread_filter: str | None = None) -> Profile:
    prof = Profile()
    for line in lines:
        stack, _, count_s = line.rstrip("\n").rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        thread, *rest = stack.split(";")
        name = thread.split(": ", 1)[-1] if thread.startswith("thread") else "?"
        name = re.sub(r"_\d+$", "", name)  # executor threads: finpulse-model_0 -> finpulse-model
        if thread_filter and thread_filter not in name:
            continue
        frames = [_frame(f) for f in rest]
        if frames and frames[-1][0] in _IDLE_LEAVES:
            prof.idle += count  # an event loop waiting for I/O: py-spy calls it active here
            continue
        prof.samples += count
        prof.threads[name] += count
        layer, hot = layer_of(frames)
        prof.layers[layer] += count
        prof.hot[f"{hot} [{layer.split(' ')[0]}]"] += count
        for func, file in set(frames):
            if not _outer(func, file):
                prof.inclusive[f"{func} ({file})"] += count
    return prof


def report(prof: Profile, *, per_item: float | None, top: int) -> str:
    """Markdown: threads, layers (self), heaviest functions (inclusive)."""

    def cells(count: int) -> list[str]:
        share = f"{100 * count / max(1, prof.samples):.1f} %"
        return [share, f"{count * per_item:.0f}" if per_item else ""]

    unit = "us/item" if per_item else ""
    out = [
        markdown_table(
            ["thread", "share", unit], [[t, *cells(c)] for t, c in prof.threads.most_common()]
        ),
        "",
        markdown_table(
            ["layer (self time)", "share", unit],
            [[name, *cells(c)] for name, c in prof.layers.most_common()],
        ),
        "",
        markdown_table(
            ["hottest frames (self, with their layer)", "share", unit],
            [[f"`{f}`", *cells(c)] for f, c in prof.hot.most_common(top)],
        ),
        "",
        markdown_table(
            ["function (inclusive)", "share", unit],
            [[f"`{f}`", *cells(c)] for f, c in prof.inclusive.most_common(top)],
        ),
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw --threads output")
    parser.add_argument("--items", type=int, default=0, help="items processed while sampled")
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy samples per second")
    parser.add_argument(
        "--cpu-us",
        type=float,
        default=0.0,
        help="measured CPU per item of the threads kept (bench_worker_cpu prints it per "
        "thread): scale the shares to it instead of samples / rate",
    )
    parser.add_argument("--thread", default=None, help="only threads whose name contains this")
    parser.add_argument("--top", type=int, default=40, help="inclusive rows")
    args = parser.parse_args(argv)
    with args.profile.open(encoding="utf-8", errors="replace") as fh:
        prof = read(fh, args.thread)
    if not prof.samples:
        parser.error(f"{args.profile}: no samples")
    per_item = None
    if args.cpu_us:
        per_item = args.cpu_us / prof.samples
    elif args.items:
        per_item = 1e6 / args.rate / args.items
    print(f"{prof.samples} samples ({prof.idle} more waiting in epoll, left out)")
    print(report(prof, per_item=per_item, top=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
