"""``finpulse train/evaluate/predict``: argument errors, stdin streaming, report files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from finpulse.cli import main
from finpulse.cli import train as training_cli
from models.predictor import load_predictor

LINES = [
    "Apple shares jump after record quarter",
    "",
    "Fed signals two more hikes",
    "Oil slides as inventories build",
    "ECB holds rates; euro steady",
]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_predict_json_from_stdin_keeps_order(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training_cli, "STDIN_CHUNK", 2)  # several chunks for five lines
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(LINES) + "\n"))
    # float weights: int8 dynamic quantisation scales activations per batch, so batched and
    # single-text results would differ slightly and hide an ordering bug.
    argv = ["predict", "--model", str(tiny_model_dir), "--json", "--quantize", "off"]
    rc, out, _ = run(argv, capsys)
    assert rc == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == LINES
    predictor = load_predictor(tiny_model_dir, device="cpu", quantize=False)
    for row, text in zip(rows, LINES, strict=True):
        alone = predictor.predict([text])[0]
        assert row["sentiment"] in ("negative", "neutral", "positive")
        assert set(row["sentiment_probs"]) == {"negative", "neutral", "positive"}
        assert row["sentiment_probs"] == pytest.approx(alone.sentiment_probs, abs=1e-5)
        assert row["topic"] == alone.topic
        assert row["topic_prob"] == pytest.approx(alone.topic_prob, abs=1e-5)
        assert row["model_version"] == alone.model_version


def test_predict_table_from_arguments(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(["predict", "--model", str(tiny_model_dir), "one text", "two text"], capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["sentiment", "p"]
    assert lines[1].endswith("one text")
    assert lines[2].endswith("two text")


def test_predict_on_a_non_model_dir_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(["predict", "--model", str(tmp_path), "x"], capsys)
    assert rc == 2
    assert "manifest.json" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--output", "x"],
        ["train", "--profile", "medium", "--output", "x"],
        ["train", "--profile", "quick"],
        ["train", "--profile", "quick", "--output", "x", "--batch-size", "0"],
        ["train", "--profile", "quick", "--output", "x", "--lr", "fast"],
        ["evaluate"],
        ["evaluate", "d", "--head", "both"],
        ["predict", "x"],
    ],
)
def test_argument_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_evaluate_label_map_errors(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(["evaluate", str(tiny_model_dir), "--label-map", "0=negative"], capsys)
    assert (rc, "needs --data") == (2, err[err.index("needs") :][:12])
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\nup,bull\n", encoding="utf-8")
    rc, _, err = run(
        ["evaluate", str(tiny_model_dir), "--data", str(csv), "--label-map", "bull=up"], capsys
    )
    assert rc == 2
    assert "'up' is not a sentiment label" in err


def test_evaluate_custom_csv_writes_report(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "news.csv"
    rows = [("Stocks crash", "bear"), ("Record profit", "bull"), ("Meeting on Tuesday", "flat")]
    csv.write_text(
        "text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8"
    )
    out_dir = tmp_path / "eval"
    rc, out, _ = run(
        [
            "evaluate",
            str(tiny_model_dir),
            "--data",
            str(csv),
            "--label-map",
            "bear=negative,bull=positive,flat=neutral",
            "--json",
            "--output",
            str(out_dir),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert rc == 0
    report = json.loads(out)
    (head,) = report["heads"]
    assert head["head"] == "sentiment"
    assert head["model"]["n"] == 3
    assert sum(map(sum, head["model"]["confusion"])) == 3
    assert {"loughran-mcdonald", "vader"} <= set(head["baselines"])
    assert head["baselines"]["majority (neutral)"]["accuracy"] == pytest.approx(1 / 3)
    assert json.loads((out_dir / "report.json").read_text()) == report
    assert (out_dir / "confusion_sentiment.png").read_bytes()[:4] == b"\x89PNG"
    assert "sentiment head on" in (out_dir / "report.txt").read_text()
