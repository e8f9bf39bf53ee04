"""stream_app/service/shutdown.py: a hung stop ends with exit 70 and says where it hung.

The watchdog runs in a child process whose event loop is stuck the way a worker's stop
hung (a task awaiting inside an async generator that never yields): the child must exit
with ``EXIT_STOP_TIMEOUT`` soon after the deadline, printing the thread stacks and the
stuck task's await chain down into the generator. ``exit_now`` must keep what was logged.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from stream_app.service.shutdown import EXIT_STOP_TIMEOUT

HUNG = textwrap.dedent(
    """
    import asyncio, logging
    from stream_app.service.shutdown import start_watchdog

    async def take():
        while True:
            await asyncio.Event().wait()   # never set: like a take() that never fills
            yield 1

    async def actor():
        async for _ in take():
            pass

    async def main():
        logging.basicConfig(level=logging.INFO)
        asyncio.create_task(actor(), name="stuck-actor")
        start_watchdog(0.5, asyncio.get_running_loop())
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_a_hung_stop_exits_70_with_thread_and_task_stacks() -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HUNG], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == EXIT_STOP_TIMEOUT, done.stderr[-2000:]
    assert took < 30  # 0.5 s deadline plus interpreter start-up; not the 60 s sleep
    err = done.stderr
    assert "the stop did not finish in 0 s" in err or "the stop did not finish in 1 s" in err
    assert "Current thread" in err or "Thread 0x" in err  # faulthandler's thread dump
    chain = err[err.index("task stuck-actor") :]
    assert " actor" in chain.splitlines()[1]
    assert " take" in chain.splitlines()[2]  # followed into the async generator


def test_exit_now_flushes_what_was_logged() -> None:
    code = (
        "import logging, sys\n"
        "from stream_app.service.shutdown import exit_now\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
        "logging.getLogger('x').info('last words')\n"
        "print('printed', end='')\n"
        "exit_now(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "last words" in done.stdout
    assert done.stdout.endswith("printed")
