"""How a worker process ends: a watchdog for a stop that hangs, a fast exit after a clean one.

``FinpulseApp.on_stop`` starts the watchdog when a stop begins: if the stop is still
running ``shutdown_timeout_seconds`` later, it writes every thread's stack and every
asyncio task's await chain (through async generators, which ``Task.print_stack`` cannot
follow) to stderr and ends the process with exit code 70. That is safe for the data:
the consumer commits only acknowledged offsets, so whatever was in flight is redelivered.

``exit_now`` ends the process without the interpreter's teardown, which takes seconds
once torch, transformers and Faust are imported (4 s measured on a busy 2-core machine)
and would only count against a supervisor's kill timeout; ``run_worker`` calls it once the
stop finished, when everything is flushed and committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

__all__ = ["EXIT_STOP_TIMEOUT", "exit_now", "start_watchdog", "task_stacks"]

log = logging.getLogger(__name__)

EXIT_STOP_TIMEOUT = 70  # EX_SOFTWARE: the stop hung and the watchdog ended it


def start_watchdog(seconds: float, loop: asyncio.AbstractEventLoop) -> None:
    """Exit 70 if the stop is not done in ``seconds``: a hung stop must not wait for the
    supervisor's SIGKILL. Safe for the data: nothing unacknowledged was committed."""

    def give_up() -> None:
        log.critical(
            "the stop did not finish in %.0f s: exiting now; batches not acknowledged are "
            "redelivered. Thread and task stacks follow.",
            seconds,
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        for line in task_stacks(loop):
            print(line, file=sys.stderr)
        exit_now(EXIT_STOP_TIMEOUT)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()


def task_stacks(loop: asyncio.AbstractEventLoop) -> Iterator[str]:
    """Every task of ``loop`` and the chain of coroutines and async generators it awaits.

    Read from the watchdog thread while the loop may still run: best effort, for the log.
    """
    try:
        tasks = list(asyncio.all_tasks(loop))
    except RuntimeError:  # the set changed while we copied it
        return
    for task in tasks:
        yield f"task {task.get_name()} (cancelling={task.cancelling()}):"
        obj: Any = task.get_coro()
        for _ in range(64):
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
            if frame is not None:
                yield f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
            nxt = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None)
            if nxt is None and frame is None:
                # async_generator_asend, coroutine_wrapper, FutureIter: C wrappers whose
                # referents hold the generator, coroutine or future they stand for.
                inner = [
                    r
                    for r in gc.get_referents(obj)
                    if hasattr(r, "ag_frame") or hasattr(r, "cr_frame") or asyncio.isfuture(r)
                ]
                nxt = inner[0] if inner else None
            if asyncio.isfuture(nxt) and not isinstance(nxt, asyncio.Task):
                yield f"    awaits {nxt!r}"[:300]
                break
            if nxt is None:
                yield f"    awaits {obj!r}"[:300]
                break
            obj = nxt.get_coro() if isinstance(nxt, asyncio.Task) else nxt


def exit_now(code: int) -> NoReturn:
    """Flush the logs and end the process without the interpreter's teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
