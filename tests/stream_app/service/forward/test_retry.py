"""What an HTTP answer means for a delivery, and the back-off between attempts."""

from __future__ import annotations

import random

import pytest

from stream_app.service.forward.retry import RetryPolicy, classify, parse_retry_after


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [(200, True, False), (202, True, False), (204, True, False), (500, False, True),
     (503, False, True), (429, False, True), (408, False, True), (400, False, False),
     (401, False, False), (404, False, False), (410, False, False), (301, False, False)],
)  # fmt: skip
def test_statuses(status: int, ok: bool, retryable: bool) -> None:
    got = classify(status, "body")
    assert (got.ok, got.retryable) == (ok, retryable)
    assert got.reason == f"http {status}"


def test_detail_keeps_the_start_of_the_answer_on_one_line() -> None:
    got = classify(400, "invalid_payload\n" + "x" * 500)
    assert got.detail.startswith("http 400: invalid_payload x")
    assert len(got.detail) < 220


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    p = RetryPolicy(max_attempts=6, backoff_seconds=1, backoff_max_seconds=5)
    rng = random.Random(0)
    for failures, full in [(1, 1), (2, 2), (3, 4), (4, 5), (5, 5)]:
        for _ in range(50):
            assert full / 2 <= p.delay(failures, rng) <= full
    assert p.worst_case_seconds() == 6 * 10 + (1 + 2 + 4 + 5 + 5)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    p = RetryPolicy(backoff_seconds=0.01, backoff_max_seconds=5)
    assert p.delay(1, random.Random(0), retry_after=3) == 3
    assert p.delay(1, random.Random(0), retry_after=300) == 5
    assert parse_retry_after(" 7 ") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None
