"""bench/_common.py and bench/profile_summary.py: the helpers every benchmark number rests on.

Expected values are worked out by hand from the definitions (Prometheus'
``histogram_quantile``, proc(5)), never produced by the code under test.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._common import (
    histogram_quantile,
    markdown_table,
    percentile,
    proc_cpu_times,
    run_in_workdir,
    run_measured,
    total,
    write_json,
)
from bench.profile_summary import layer_of, read


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    # 10 observations <= 0.1, 30 more <= 0.5, 10 more <= 1.0, none above: 50 in all.
    buckets = {0.1: 10.0, 0.5: 40.0, 1.0: 50.0, math.inf: 50.0}
    # p50: rank 25 lies in (0.1, 0.5], 15 of its 30 -> 0.1 + 0.4 * 15/30 = 0.3
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)
    # p90: rank 45 lies in (0.5, 1.0], 5 of its 10 -> 0.75
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.75)
    # p10: rank 5 in the first bucket, from 0 -> 0.05
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.05)


def test_histogram_quantile_in_the_inf_bucket_answers_the_last_finite_edge() -> None:
    assert histogram_quantile(0.99, {1.0: 1.0, math.inf: 10.0}) == 1.0
    assert math.isnan(histogram_quantile(0.5, {1.0: 0.0, math.inf: 0.0}))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0


def test_total_sums_samples_matching_name_and_labels() -> None:
    samples = [
        ("finpulse_dead_letters_total", {"reason": "late_event"}, 3.0),
        ("finpulse_dead_letters_total", {"reason": "bad_json"}, 2.0),
        ("finpulse_scored_total", {}, 7.0),
    ]
    assert total(samples, "finpulse_dead_letters_total") == 5.0
    assert total(samples, "finpulse_dead_letters_total", reason="late_event") == 3.0
    assert total(samples, "finpulse_alerts_total") == 0.0


def test_proc_cpu_times_sees_a_child_burn_cpu() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        used = 0.0
        while time.monotonic() < deadline:
            used = sum(proc_cpu_times(child.pid))  # process_time() itself is a system call
            if used >= 0.4:
                break
            time.sleep(0.05)
        # The child burnt >= 0.4 s of its own CPU (plus interpreter start-up).
        assert used >= 0.4
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)


def test_markdown_table_right_aligns_numbers() -> None:
    assert markdown_table(["measure", "value"], [["a", 1]]) == (
        "| measure | value |\n|---|---:|\n| a | 1 |"
    )


def test_write_json_keeps_results_machine_and_command(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "r.json"
    write_json(out, {"rate": 1.5}, info={"cores": 2}, markdown="| x |", model=Path("/m"))
    data = json.loads(out.read_text())
    assert data["results"] == {"rate": 1.5}
    assert data["machine"] == {"cores": 2}
    assert data["markdown"] == "| x |"
    assert data["model"] == "/m"
    assert "command" in data


def test_profile_layers_go_to_the_innermost_named_layer() -> None:
    loop = ("BaseEventLoop._run_once", "asyncio/base_events.py")
    send = ("AIOKafkaProducer.send", "aiokafka/producer/producer.py")
    call_soon = ("BaseEventLoop.call_soon", "asyncio/base_events.py")
    dump = ("BaseModel.model_dump_json", "pydantic/main.py")
    stage = ("ScoreStage.process", "stream_app/service/score.py")
    # asyncio plumbing under an aiokafka frame counts as aiokafka
    assert layer_of([loop, stage, send, call_soon])[0].startswith("aiokafka")
    assert layer_of([loop, stage, dump])[0].startswith("pydantic")
    assert layer_of([loop, stage])[0].startswith("finpulse service")
    assert layer_of([loop])[0] == "asyncio event loop"


def test_profile_read_counts_samples_per_thread_and_layer() -> None:
    lines = [
        "thread (1): MainThread;_run (asyncio/events.py:80);send (aiokafka/conn.py:423) 30\n",
        "thread (2): finpulse-model_0;predict (models/predictor.py:212) 10\n",
        "garbage line without a count\n",
        "thread (1): MainThread;_run_once (asyncio/base_events.py:1884);"
        "EpollSelector.select (selectors.py:468) 50\n",
    ]
    prof = read(lines)
    assert prof.samples == 40  # the 50 samples waiting in epoll are not CPU
    assert prof.idle == 50
    assert prof.threads == {"MainThread": 30, "finpulse-model": 10}
    assert prof.layers["aiokafka (produce, fetch, protocol)"] == 30
    assert prof.layers["model (torch, tokenizer, predictor)"] == 10
    assert read(lines, thread_filter="model").samples == 10


def test_run_in_workdir_tells_success_from_failure(capsys: pytest.CaptureFixture[str]) -> None:
    from models.errors import FinpulseError

    seen: list[Path] = []

    async def fine(workdir: Path) -> None:  # a bench whose run returns nothing
        seen.append(workdir)

    async def broken(workdir: Path) -> int:
        seen.append(workdir)
        raise FinpulseError("the worker exited")

    assert run_in_workdir("t-", fine) == (True, None)
    assert not seen[0].exists()  # removed after a run that worked
    assert run_in_workdir("t-", broken) == (False, None)
    assert seen[1].is_dir()  # kept: its logs say why
    assert "error: the worker exited" in capsys.readouterr().err
    shutil.rmtree(seen[1])


def test_run_measured_reports_the_load_the_run_started_under() -> None:
    async def fine(workdir: Path) -> int:
        return 7

    ok, result, info = run_measured("t-", fine)
    assert (ok, result) == (True, 7)
    assert {"date", "load_avg", "load_avg_at_start"} <= set(info)
    assert len(info["load_avg_at_start"].split(" / ")) == 3
