"""The stream-app verbs: registration, flags, and clear errors for bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from finpulse.cli import build_parser, main


def test_verbs_are_registered_with_their_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["worker", "--model", "m", "--web-port", "7000"])
    assert args.model == Path("m")
    assert args.web_port == 7000
    assert callable(args.handler)
    args = parser.parse_args(["demo", "--exit-when-done", "--model", "x"])
    assert args.exit_when_done
    assert args.model == Path("x")
    assert not parser.parse_args(["demo"]).exit_when_done  # by default the stack stays up
    args = parser.parse_args(
        ["alerts", "tail", "--entity", "ticker:TSLA", "--min-severity", "high",
         "--from-beginning", "--json"]
    )  # fmt: skip
    assert (args.entity, args.min_severity, args.from_beginning, args.json) == (
        "ticker:TSLA", "high", True, True,
    )  # fmt: skip


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["alerts", "tail", "--min-severity", "apocalyptic"])


def test_worker_without_model_says_how_to_train_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["worker", "--model", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 2
    assert "finpulse train --profile quick --output" in err
    assert "missing" in err


def test_invalid_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINPULSE_BATCH_SIZE", "0")
    code = main(["worker"])
    err = capsys.readouterr().err
    assert code == 2
    assert "FINPULSE_BATCH_SIZE" in err
    assert "Traceback" not in err


def test_secrets_are_not_echoed_on_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINPULSE_REDIS_URL", "http://user:hunter2@host/0")
    assert main(["worker"]) == 2
    assert "hunter2" not in capsys.readouterr().err
