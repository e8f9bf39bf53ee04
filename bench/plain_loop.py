"""The "plain aiokafka loop" contender: what a user would write in an afternoon, for scale.

``getmany(max_records=batch)`` -> the same ``Predictor`` the worker loads (in a one-thread
executor, as the worker runs it) -> one JSON record per item on an output topic -> await
every acknowledgement -> commit. No validation, no entity fan-out, no windows, no
dead letters: it is the floor of what a Kafka scoring loop costs, not a product.

Run as a child process by ``bench.bench_worker_cpu`` (its CPU time must be its own):
it reads ``FINPULSE_*`` like the worker (broker, model, device), consumes the first
``--warmup`` records untimed (model load, padded shapes), then times the next ``--n``
and prints one JSON line: ``{"items", "cpu_s", "wall_s"}`` with ``cpu_s`` this process's
user + system time (all threads) over the timed records.

    python -m bench.plain_loop --topic news-x --out scored-x --group g --warmup 1000 --n 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from stream_app.config import Settings
from stream_app.model import load_worker_predictor
from stream_app.service.broker import aiokafka_kwargs


async def run(args: argparse.Namespace) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    settings = Settings()  # type: ignore[call-arg]
    predictor = load_worker_predictor(settings)
    pool = ThreadPoolExecutor(1, thread_name_prefix="plain-model")
    loop = asyncio.get_running_loop()
    consumer = AIOKafkaConsumer(
        args.topic,
        **aiokafka_kwargs(settings),
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all")
    await consumer.start()
    await producer.start()
    seen, timed_from = 0, -1
    cpu0 = wall0 = 0.0
    try:
        while seen < args.warmup + args.n:
            if timed_from < 0 and seen >= args.warmup:
                timed_from, cpu0, wall0 = seen, time.process_time(), time.perf_counter()
            got = await consumer.getmany(timeout_ms=250, max_records=args.batch)
            records = [r for part in got.values() for r in part]
            if not records:
                continue
            items = [json.loads(r.value or b"{}") for r in records]
            texts = [str(x.get("headline", "")) for x in items]
            preds = await loop.run_in_executor(pool, predictor.predict, texts)
            acks = [
                await producer.send(
                    args.out,
                    json.dumps(
                        {
                            **x,
                            "sentiment": p.sentiment,
                            "sentiment_probs": p.sentiment_probs,
                            "topic": p.topic,
                            "topic_prob": p.topic_prob,
                            "model_version": p.model_version,
                        }
                    ).encode(),
                    key=str(x.get("id", "")).encode(),
                )
                for x, p in zip(items, preds, strict=True)
            ]
            await asyncio.gather(*acks)
            await consumer.commit()
            seen += len(records)
        return {
            "items": float(seen - timed_from),
            "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0,
        }
    finally:
        await producer.stop()
        await consumer.stop()
        pool.shutdown(wait=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--topic", required=True, help="input news topic")
    parser.add_argument("--out", required=True, help="output topic")
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--warmup", type=int, default=0, help="records consumed untimed first")
    parser.add_argument("--n", type=int, required=True, help="records timed after the warm-up")
    parser.add_argument("--batch", type=int, default=64, help="getmany max_records")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
