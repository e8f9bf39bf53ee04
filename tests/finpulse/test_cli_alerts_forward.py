"""``finpulse alerts forward``: --check prints the plan masked; bad config is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from finpulse.cli import main


def test_check_prints_sinks_and_routes_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.com/services/T000/B000/SECRETTOKEN")
    config = tmp_path / "routes.yaml"
    config.write_text(
        "sinks:\n  desk: {type: slack, url_env: SLACK_URL}\n"
        "  am: {type: alertmanager, url: 'http://am:9093'}\n"
        "routes:\n  - {sinks: [desk, am], min_severity: high, entities: ['ticker:*']}\n"
    )
    assert main(["alerts", "forward", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert "sink desk: slack https://hooks.slack.com/…" in out
    assert "sink am: alertmanager http://am:9093" in out
    assert "route 0: any kind, >= high, ticker:* -> desk, am" in out
    assert "SECRETTOKEN" not in out


def test_bad_config_and_bad_env_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text("sinks: {a: {type: slack, url: 'http://x'}}\nroutes: [{sinks: [b]}]\n")
    assert main(["alerts", "forward", "--config", str(config), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"finpulse: error: {config}: routes.0.sinks: unknown sink 'b' (known: a)")
    monkeypatch.setenv("FINPULSE_FORWARD_MAX_ATTEMPTS", "0")
    assert main(["alerts", "forward", "--check"]) == 2
    assert "FINPULSE_FORWARD_MAX_ATTEMPTS" in capsys.readouterr().err
