"""Routes files (YAML, TOML) and the env fallback: validated, errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.config import ForwardSettings
from stream_app.service.forward.config import ForwardConfigError, load_plan, masked_url

YAML = """
dashboard_url: "https://desk.example/?entity={entity}"
retry: {max_attempts: 7, backoff_seconds: 0.5}
sinks:
  hook: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET, headers: {X-Team: desk}}
  slack: {type: slack, url_env: SLACK_URL, evidence: 2}
  am: {type: alertmanager, url: "http://am:9093", resend_seconds: 30, labels: {team: desk}}
routes:
  - {sinks: [am]}
  - {sinks: [slack], min_severity: medium, kinds: [negative, positive]}
  - {sinks: [hook], entities: ["ticker:*"], exclude_entities: ["ticker:SPY"]}
"""
ENV = {
    "HOOK_URL": "https://hooks.example/T0K3N/abc?sig=secret",
    "HOOK_SECRET": "k3y",
    "SLACK_URL": "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
}
SETTINGS = ForwardSettings()  # type: ignore[call-arg]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_routes_file_resolves_urls_secrets_and_defaults(tmp_path: Path) -> None:
    plan = load_plan(SETTINGS, write(tmp_path, "routes.yaml", YAML), ENV)
    hook, slack, am = plan.sinks["hook"], plan.sinks["slack"], plan.sinks["am"]
    assert hook.url == ENV["HOOK_URL"]
    assert hook.secret == b"k3y"
    assert hook.headers == {"X-Team": "desk"}
    assert slack.evidence == 2
    assert (am.resend_seconds, am.labels) == (30, {"team": "desk"})
    assert plan.retry.max_attempts == 7
    assert plan.retry.backoff_seconds == 0.5
    assert plan.retry.backoff_max_seconds == SETTINGS.backoff_max_seconds
    assert plan.dashboard_url == "https://desk.example/?entity={entity}"
    assert [r.sinks for r in plan.routes] == [["am"], ["slack"], ["hook"]]
    described = "\n".join(plan.describe())
    for secret in ("T0K3N", "secret", "XXXXSECRET", "k3y", "B000"):
        assert secret not in described
    assert "sink hook: webhook https://hooks.example/…" in described


def test_toml_is_read_the_same_way(tmp_path: Path) -> None:
    toml = """
[sinks.am]
type = "alertmanager"
url = "http://am:9093"

[[routes]]
sinks = ["am"]
min_severity = "high"
"""
    plan = load_plan(SETTINGS, write(tmp_path, "routes.toml", toml), {})
    assert plan.sinks["am"].type == "alertmanager"
    assert plan.routes[0].min_severity == "high"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sinks: {}\nroutes: []", "routes.yaml: sinks: .*at least 1"),
        ("sinks: {a: {type: slack, url: 'http://x'}}\nroutes: [{sinks: [b]}]",
         "routes.yaml: routes.0.sinks: unknown sink 'b' \\(known: a\\)"),
        ("sinks: {a: {type: slack, url: 'http://x'}}\nroutes: [{sinks: [a], min_severity: huge}]",
         "routes.yaml: routes.0.min_severity: Input should be 'low'"),
        ("sinks: {a: {type: slack, url: 'http://x'}}\nroutes: [{sinks: [a], kinds: [bogus]}]",
         "routes.yaml: routes.0.kinds.0: Input should be 'negative'"),
        ("sinks: {a: {type: pager, url: 'http://x'}}\nroutes: [{sinks: [a]}]",
         "routes.yaml: sinks.a: Input tag 'pager' found using 'type' does not match"),
        ("sinks: {a: {type: slack, url: 'http://x', colour: red}}\nroutes: [{sinks: [a]}]",
         "routes.yaml: sinks.a.colour: Extra inputs are not permitted"),
        ("sinks: {a: {type: slack}}\nroutes: [{sinks: [a]}]",
         "routes.yaml: sinks.a: give exactly one of url and url_env"),
        ("sinks: {a: {type: alertmanager, url: 'http://x', labels: {severity: x}}}\n"
         "routes: [{sinks: [a]}]", "sinks.a: label 'severity': must match"),
        ("sinks: {a: {type: slack, url: 'ftp://hooks/T0K3N'}}\nroutes: [{sinks: [a]}]",
         "routes.yaml: sinks.a.url: must be an http\\(s\\) URL"),
        ("sinks: {a: {type: webhook, url: 'http://x'}}\nroutes: [{sinks: [a]}]",
         "sinks.a: a webhook signs its body: set secret_env or FINPULSE_FORWARD_HMAC_SECRET"),
        ("sinks: {a: {type: slack, url_env: NOPE_URL}}\nroutes: [{sinks: [a]}]",
         "routes.yaml: sinks.a.url_env: environment variable NOPE_URL is not set"),
        ("- just a list", "expected a mapping"),
        ("sinks: [unclosed", "invalid YAML"),
    ],
)  # fmt: skip
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "routes.yaml", text)
    with pytest.raises(ForwardConfigError, match=message) as err:
        load_plan(SETTINGS, path, {})
    assert "T0K3N" not in str(err.value)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ForwardConfigError, match="unknown config format"):
        load_plan(SETTINGS, write(tmp_path, "routes.ini", "x"), {})
    with pytest.raises(ForwardConfigError, match="cannot read forward config"):
        load_plan(SETTINGS, tmp_path / "missing.yaml", {})


def test_env_only_makes_one_sink_and_route_per_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_FORWARD_SLACK_URL", ENV["SLACK_URL"])
    monkeypatch.setenv("FINPULSE_FORWARD_WEBHOOK_URL", ENV["HOOK_URL"])
    monkeypatch.setenv("FINPULSE_FORWARD_HMAC_SECRET", "k3y")
    monkeypatch.setenv("FINPULSE_FORWARD_MIN_SEVERITY", "high")
    settings = ForwardSettings()  # type: ignore[call-arg]
    plan = load_plan(settings)
    assert sorted(plan.sinks) == ["slack", "webhook"]
    assert plan.sinks["webhook"].secret == b"k3y"
    assert {(tuple(r.sinks), r.min_severity) for r in plan.routes} == {
        (("webhook",), "high"), (("slack",), "high"),
    }  # fmt: skip
    assert "XXXXSECRET" not in repr(settings)
    assert "XXXXSECRET" not in repr(plan)


def test_no_sinks_at_all_is_a_clear_error() -> None:
    with pytest.raises(ForwardConfigError, match="no sinks: set FINPULSE_FORWARD_CONFIG"):
        load_plan(SETTINGS, None, {})


def test_masked_url_keeps_scheme_host_and_port_only() -> None:
    assert (
        masked_url("https://user:pw@hooks.example:8443/T0K3N?x=1") == "https://hooks.example:8443/…"
    )
    assert masked_url("http://am:9093") == "http://am:9093"
