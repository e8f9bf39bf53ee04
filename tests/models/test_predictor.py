"""Predictor: input order, batch-size independence, the input contract and settings errors."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.checkpoint import load_model, read_manifest
from models.errors import DeviceError
from models.labels import SENTIMENT_LABELS, TOPIC_LABELS
from models.predictor import BatchStats, Prediction, Predictor, PredictorError, load_predictor
from models.runtime import cpu_has_native_bf16
from tests.support.tiny_model import make_tiny_model_dir

TEXTS = [
    "Apple beats earnings expectations, shares jump 5% after hours on strong iPhone sales",
    "Fed holds",
    "",
    "Oil prices slide as OPEC+ signals higher output; energy stocks under pressure today",
    "$TSLA 🚀🚀",
    "Les marchés européens reculent, la BCE inquiète — 日本株は下落",
    "   ",
    "Goldman cuts price target on $NVDA",
]


@pytest.fixture(scope="module")
def fp32(tiny_model_dir: Path) -> Predictor:
    return load_predictor(tiny_model_dir, device="cpu", quantize=False, precision="fp32")


def _assert_same(a: Sequence[Prediction], b: Sequence[Prediction], tol: float = 1e-5) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.sentiment == y.sentiment
        assert x.topic == y.topic
        assert math.isclose(x.topic_prob, y.topic_prob, abs_tol=tol)
        for label in SENTIMENT_LABELS:
            assert math.isclose(x.sentiment_probs[label], y.sentiment_probs[label], abs_tol=tol)


def test_results_are_in_input_order(fp32: Predictor) -> None:
    batched = fp32.predict(TEXTS)
    one_by_one = [fp32.predict([t])[0] for t in TEXTS]
    _assert_same(batched, one_by_one)


def test_batch_size_does_not_change_outputs(tiny_model_dir: Path) -> None:
    texts = TEXTS * 9
    big = load_predictor(tiny_model_dir, device="cpu", precision="fp32", batch_size=64)
    small = load_predictor(tiny_model_dir, device="cpu", precision="fp32", batch_size=1)
    odd = load_predictor(tiny_model_dir, device="cpu", precision="fp32", batch_size=5)
    reference = big.predict(texts)
    _assert_same(reference, small.predict(texts))
    _assert_same(reference, odd.predict(texts))


@pytest.fixture(scope="module")
def by_batch_size(tiny_model_dir: Path) -> dict[int, Predictor]:
    return {
        n: load_predictor(tiny_model_dir, device="cpu", precision="fp32", batch_size=n)
        for n in range(1, 6)
    }


@settings(max_examples=10, deadline=None)
@given(
    texts=st.lists(st.text(max_size=60), min_size=1, max_size=12),
    batch_size=st.integers(min_value=1, max_value=5),
)
def test_any_texts_any_batch_size_match_single_predictions(
    by_batch_size: dict[int, Predictor], texts: list[str], batch_size: int
) -> None:
    p = by_batch_size[batch_size]
    _assert_same(p.predict(texts), [p.predict([t])[0] for t in texts])


def test_predictions_are_well_formed(fp32: Predictor, tiny_model_dir: Path) -> None:
    version = read_manifest(tiny_model_dir).model_version
    for pred in fp32.predict(TEXTS):
        assert set(pred.sentiment_probs) == set(SENTIMENT_LABELS)
        assert math.isclose(sum(pred.sentiment_probs.values()), 1.0, abs_tol=1e-5)
        assert pred.sentiment == max(pred.sentiment_probs, key=pred.sentiment_probs.__getitem__)
        assert pred.topic in TOPIC_LABELS
        assert 1 / len(TOPIC_LABELS) <= pred.topic_prob <= 1.0
        assert pred.model_version == version
        assert Prediction(**pred.to_dict()) == pred


def test_empty_batch_gives_empty_list(fp32: Predictor) -> None:
    assert fp32.predict([]) == []
    assert fp32.predict(()) == []


def test_blank_texts_all_get_the_empty_text_prediction(fp32: Predictor) -> None:
    blank = ["", " ", "\n\t ", "\u3000\u2003"]
    preds = fp32.predict(blank)
    for pred in preds[1:]:
        _assert_same([pred], preds[:1], tol=1e-6)


def test_long_text_is_truncated_not_stalled(fp32: Predictor) -> None:
    words = " ".join(f"w{i}" for i in range(5000))
    huge = "stocks " * 2_000_000  # 14 MB
    preds = fp32.predict([words, huge])
    assert len(preds) == 2
    # Beyond max_length tokens, extra text cannot change the result.
    _assert_same(fp32.predict([words])[:1], fp32.predict([words + " more words at the end"]))
    assert preds[1].model_version == fp32.model_version


def test_max_chars_bounds_text_before_tokenising(tiny_model_dir: Path) -> None:
    p = load_predictor(tiny_model_dir, device="cpu", precision="fp32", max_chars=12)
    _assert_same(p.predict(["Apple beats | tail ignored"]), p.predict(["Apple beats "]))


@pytest.mark.parametrize(
    ("bad", "index", "kind"),
    [
        (["ok", None], 1, "NoneType"),
        ([3, "ok"], 0, "int"),
        (["a", "b", b"bytes"], 2, "bytes"),
    ],
)
def test_non_str_element_is_a_type_error_naming_its_index(
    fp32: Predictor, bad: list[Any], index: int, kind: str
) -> None:
    with pytest.raises(TypeError, match=rf"texts\[{index}\] is {kind}, expected str"):
        fp32.predict(bad)


@pytest.mark.parametrize("bad", ["a bare string", b"bytes", 42, None, {"a", "b"}, iter(["x"])])
def test_batch_that_is_not_a_sequence_of_texts_is_a_type_error(fp32: Predictor, bad: Any) -> None:
    with pytest.raises(TypeError, match="sequence of str"):
        fp32.predict(bad)


def test_concurrent_calls_never_overlap_inside_the_forward_pass(tiny_model_dir: Path) -> None:
    p = load_predictor(tiny_model_dir, device="cpu", precision="fp32", batch_size=2)
    expected = p.predict(TEXTS)
    real_forward = p.model.forward
    in_flight = 0
    most = 0
    guard = threading.Lock()

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        with guard:
            in_flight += 1
            most = max(most, in_flight)
        try:
            time.sleep(0.005)  # widen the window an unlocked predictor would overlap in
            return real_forward(*args, **kwargs)
        finally:
            with guard:
                in_flight -= 1

    p.model.forward = counting_forward  # type: ignore[method-assign]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: p.predict(TEXTS), range(8)))
    assert most == 1
    for result in results:
        _assert_same(result, expected, tol=1e-6)


def test_quantize_on_is_refused_with_the_way_forward(tiny_model_dir: Path) -> None:
    with pytest.raises(PredictorError, match=r"int8 quantisation was removed.*precision"):
        load_predictor(tiny_model_dir, device="cpu", quantize=True)


def test_auto_settings_on_cpu(tiny_model_dir: Path) -> None:
    p = load_predictor(tiny_model_dir, device="cpu")
    assert p.device == "cpu"
    assert p.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert len(p.predict(TEXTS)) == len(TEXTS)


def test_bf16_stays_close_to_fp32(tiny_model_dir: Path, fp32: Predictor) -> None:
    bf16 = load_predictor(tiny_model_dir, device="cpu", precision="bf16")
    for x, y in zip(bf16.predict(TEXTS), fp32.predict(TEXTS), strict=True):
        for label in SENTIMENT_LABELS:
            assert abs(x.sentiment_probs[label] - y.sentiment_probs[label]) < 0.02


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_cuda_requested_without_gpu_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available"):
        load_predictor(tiny_model_dir, device="cuda")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "CPU", ""])
def test_unknown_device_is_refused(tiny_model_dir: Path, device: str) -> None:
    with pytest.raises(DeviceError, match="device must be"):
        load_predictor(tiny_model_dir, device=device)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantize": "yes"}, "quantize must be"),
        ({"precision": "fp16"}, "precision must be"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": 1}, "max_length"),
        ({"max_chars": 0}, "max_chars"),
        ({"num_threads": 0}, "num_threads"),
    ],
)
def test_bad_settings_are_refused(
    tiny_model_dir: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(PredictorError, match=message):
        load_predictor(tiny_model_dir, **kwargs)


def test_temperatures_from_the_manifest_divide_the_logits(tmp_path: Path) -> None:
    hot = make_tiny_model_dir(tmp_path / "hot", temperatures={"sentiment": 2.5, "topic": 0.5})
    p = load_predictor(hot, device="cpu", precision="fp32")
    raw = load_model(hot)
    batch = raw.tokenizer(TEXTS[:2], truncation=True, max_length=128)
    for i, pred in enumerate(p.predict(TEXTS[:2])):
        ids = torch.tensor([batch["input_ids"][i]])
        with torch.inference_mode():
            out = raw.model(ids, torch.ones_like(ids))
        sent = torch.softmax(out.sentiment_logits[0] / 2.5, -1).tolist()
        topic = torch.softmax(out.topic_logits[0] / 0.5, -1).max().item()
        assert [pred.sentiment_probs[label] for label in SENTIMENT_LABELS] == pytest.approx(
            sent, abs=1e-5
        )
        assert pred.topic_prob == pytest.approx(topic, abs=1e-5)


def test_urls_normalisation_is_applied_when_the_model_was_trained_with_it(tmp_path: Path) -> None:
    urls = make_tiny_model_dir(tmp_path / "urls", metadata={"text_normalization": "urls"})
    p = load_predictor(urls, device="cpu", precision="fp32")
    assert p.text_normalization == "urls"
    a, b = p.predict(["Oil falls https://t.co/AbCdEf123", "Oil falls http"])
    _assert_same([a], [b], tol=1e-6)


def test_observer_sees_token_counts_truncation_and_unknown_tokens(tiny_model_dir: Path) -> None:
    p = load_predictor(tiny_model_dir, device="cpu", precision="fp32", max_length=16)
    seen: list[tuple[int, BatchStats]] = []
    p.observer = lambda preds, stats: seen.append((len(preds), stats))
    texts = ["Fed holds", " ".join(["stocks"] * 40), "\u2603\u2603 snowman", ""]
    p.predict(texts)
    ((count, stats),) = seen
    assert count == 4
    expected = [len(p.tokenizer(t, truncation=True, max_length=16)["input_ids"]) for t in texts]
    assert list(stats.tokens) == expected
    assert expected[1] == 16
    assert stats.truncated == (False, True, False, False)
    unk = p.tokenizer.unk_token_id
    assert stats.unknown[2] == p.tokenizer(texts[2])["input_ids"].count(unk) > 0
    assert stats.unknown[0] == stats.unknown[1] == 0


def test_a_failing_observer_does_not_fail_the_prediction(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = load_predictor(tiny_model_dir, device="cpu", precision="fp32")
    expected = p.predict(["Fed holds", "Oil falls"])

    def broken(preds: object, stats: object) -> None:
        raise RuntimeError("monitor bug")

    p.observer = broken
    _assert_same(p.predict(["Fed holds", "Oil falls"]), expected, tol=1e-6)
    assert "monitor bug" in caplog.text
