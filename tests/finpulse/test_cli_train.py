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


def _stdin(data: bytes) -> io.TextIOWrapper:
    """A stdin whose .buffer holds exactly these bytes (predict reads bytes)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_predict_json_from_stdin_keeps_order(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training_cli, "STDIN_CHUNK", 2)  # several chunks for five lines
    monkeypatch.setattr("sys.stdin", _stdin(("\n".join(LINES) + "\n").encode()))
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


def test_predict_gives_every_line_an_output_whatever_its_bytes(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = [
        b"Apple shares jump after record quarter",
        b"Oil \xff\xfe slides",  # not UTF-8: the worker would dead-letter it
        b"tab\tand\x00nul and \x1b[31mansi",  # control characters: cleaned, scored
        "Fed signals two more hikes \u2014 \U0001f680".encode(),
        b"x" * (1 << 20) + b"y",  # longer than MAX_LINE_BYTES
        b"ECB holds rates",
    ]
    monkeypatch.setattr(training_cli, "STDIN_CHUNK", 6)  # all in one chunk
    monkeypatch.setattr("sys.stdin", _stdin(b"\n".join(raw) + b"\n"))
    rc, out, err = run(["predict", "--model", str(tiny_model_dir), "--json"], capsys)
    assert rc == 3
    assert "2 line(s) could not be scored" in err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(raw)
    assert rows[1] == {"text": None, "error": "not UTF-8 (byte 0xff at offset 4)"}
    assert rows[4] == {"text": None, "error": f"line longer than {1 << 20} bytes"}
    assert rows[2]["text"] == "tab and nul and  [31mansi"
    predictor = load_predictor(tiny_model_dir, device="cpu")
    for i in (0, 2, 3, 5):
        alone = predictor.predict([rows[i]["text"]])[0]
        assert rows[i]["sentiment_probs"] == pytest.approx(alone.sentiment_probs, abs=1e-5)
    assert rows[5]["text"] == "ECB holds rates"


def test_a_line_the_model_fails_on_costs_only_that_line(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.predictor import Predictor

    real = Predictor.predict

    def fragile(self: Predictor, texts: list[str]) -> list[object]:
        if any("boom" in t for t in texts):
            raise RuntimeError("the model choked")
        return real(self, texts)

    monkeypatch.setattr(Predictor, "predict", fragile)
    monkeypatch.setattr("sys.stdin", _stdin(b"one\ntwo boom\nthree\nfour\n"))
    rc, out, err = run(["predict", "--model", str(tiny_model_dir), "--json"], capsys)
    assert rc == 3
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == ["one", "two boom", "three", "four"]
    assert rows[1] == {"text": "two boom", "error": "RuntimeError: the model choked"}
    assert [r["text"] for r in rows] == ["one", "two boom", "three", "four"]
    assert all("sentiment" in r for r in rows[:1] + rows[2:])
    assert "1 line(s) could not be scored" in err


@pytest.mark.parametrize("verb", ["train", "evaluate", "predict"])
@pytest.mark.parametrize(("device", "message"), [("tpu", "device must be"), ("cuda:3", "CUDA")])
def test_unusable_device_is_one_line(
    verb: str,
    device: str,
    message: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = {
        "train": ["train", "--profile", "quick", "--output", str(tmp_path / "m")],
        "evaluate": ["evaluate", str(tiny_model_dir), "--no-baselines"],
        "predict": ["predict", "--model", str(tiny_model_dir), "text"],
    }[verb]
    rc, _, err = run([*argv, "--device", device], capsys)
    assert rc == 2
    assert err.startswith("finpulse: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "m").exists()  # train refused before creating anything


def test_train_to_an_unwritable_output_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.recipe

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(training.recipe, "run_recipe", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rc, _, err = run(["train", "--profile", "quick", "--output", str(blocker / "m")], capsys)
    assert rc == 2
    assert "cannot write the model to" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("nope=1", "--set nope: not a training option"),
        ("ema_decay=2", "invalid training option: ema_decay"),
        ("ema_decay", "expected FIELD=VALUE"),
        ("distill_weight=0.5", "need teachers"),
    ],
)
def test_bad_set_options_are_one_line(
    option: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--profile", "quick", "--output", str(tmp_path / "m"), "--set", option]
    rc, _, err = run(argv, capsys)
    assert rc == 2
    assert message in err


def test_predict_quantize_on_says_int8_is_gone(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(["predict", "--model", str(tiny_model_dir), "--quantize", "on", "x"], capsys)
    assert rc == 2
    assert "int8 quantisation was removed" in err


@pytest.mark.parametrize("verb", [["worker"], ["backtest", "nothing.jsonl", "--output", "out"]])
def test_finpulse_quantize_on_is_refused_with_the_way_forward(
    verb: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINPULSE_QUANTIZE", "on")
    rc = main(verb)
    err = capsys.readouterr().err
    assert rc == 2
    assert "FINPULSE_QUANTIZE" in err
    assert "int8 quantisation was removed" in err
    assert "Traceback" not in err
