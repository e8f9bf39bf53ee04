"""Backtest items/s: cold prediction cache vs the bare predictor, and a warm re-run.

Targets: a cold backtest runs at >= 0.9x the predictor's own throughput on the same
texts (the aggregator works while the model thinks), and a warm re-run (every prediction
cached) at >= 20,000 items/s. The model is loaded once, before any timing; feed loading
and validation are timed separately. Prints a Markdown table plus machine and command.

    python bench/bench_backtest.py --model artifacts/model-quick --items 3000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench._common import machine, print_footer
from finpulse.resources import sample_feed
from models.predictor import load_predictor
from stream_app.config import Settings
from stream_app.offline.backtest import run_backtest
from stream_app.offline.feeds import LoadedFeed, load_feed
from stream_app.offline.prediction_cache import CachingPredictor, PredictionCache

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feed", type=Path, default=sample_feed())
    parser.add_argument("--model", type=Path, default=REPO / "artifacts" / "model-quick")
    parser.add_argument("--items", type=int, default=None, help="first N items of the feed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()

    settings = Settings(model_dir=args.model, device=args.device)  # type: ignore[call-arg]
    t = time.perf_counter()
    feed = load_feed(args.feed, settings)
    if args.items:
        feed = LoadedFeed(feed.items[: args.items], feed.bad, feed.filtered)
    load_s = time.perf_counter() - t
    n = len(feed.items)
    inner = load_predictor(args.model, device=args.device, batch_size=args.batch_size)
    inner.predict([f.item.headline for f in feed.items[: args.batch_size]])  # warm-up

    # The Scorer predicts on the headline; time the model alone on exactly those texts.
    texts = [f.item.headline for f in feed.items]

    def predictor_alone() -> float:
        t = time.perf_counter()
        for i in range(0, n, args.batch_size):
            inner.predict(texts[i : i + args.batch_size])
        return n / (time.perf_counter() - t)

    before = predictor_alone()

    with tempfile.TemporaryDirectory() as tmp:
        cache = PredictionCache.in_dir(Path(tmp))
        version = inner.model_version
        cold = run_backtest(feed, settings, CachingPredictor(cache, version, lambda: inner),
                            batch_size=args.batch_size)  # fmt: skip
        warm = run_backtest(feed, settings, CachingPredictor(cache, version, lambda: inner),
                            batch_size=args.batch_size)  # fmt: skip
    # Measured before and after; the faster one is the bar (shared machines are noisy).
    predictor_rate = max(before, predictor_alone())
    assert [a.alert_id for a in cold.alerts] == [a.alert_id for a in warm.alerts]
    cold_rate, warm_rate = n / cold.seconds, n / warm.seconds
    rows = [
        ("feed load + validation", n / load_s, "-"),
        ("predictor alone", predictor_rate, "-"),
        ("backtest, cold cache", cold_rate,
         f"{cold_rate / predictor_rate:.2f}x predictor (target >= 0.9x)"),
        ("backtest, warm cache", warm_rate, "target >= 20,000/s"),
    ]  # fmt: skip
    unique = len(set(texts))
    print(f"\n{n} items ({unique} distinct texts: the cache predicts each once), "
          f"batch {args.batch_size}, {len(cold.alerts)} alerts\n")  # fmt: skip
    print("| stage | items/s | note |\n|---|---:|---|")
    for name, rate, note in rows:
        print(f"| {name} | {rate:,.0f} | {note} |")
    print()
    print_footer(machine())
    if args.json:
        args.json.write_text(json.dumps({name: rate for name, rate, _ in rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
