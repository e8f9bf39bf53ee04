"""Near-duplicate story detection: quality, speed and size of the contenders, in one run.

Every contender sees the same normalised tokens (``stream_app.core.novelty.tokens``), so
the table compares the sketches, not the tokenisers:

* finpulse -- weighted MinHash (60 one-byte slots, numpy per batch), LSH 10 bands x 6;
* datasketch -- ``MinHash(num_perm=60)`` over the same tokens, unweighted, with
  ``MinHashLSH(params=(10, 6))``: the same banding, no rarity weights, no first word;
* simhash -- the ``simhash`` package, 64 bits, the same weights as finpulse, a repeat at
  Hamming distance <= k (its ``SimhashIndex`` probes k + 1 blocks, then compares);
* exact -- the normalised text itself (what de-duplicating by text would catch).

Quality is measured on tests/data/novelty: the hand-labelled real pairs (``unsure``
left out), the synthetic rewrites and hard negatives, and duplicate storms (80 real
headlines, each with 9 rewrites by ``stream_app.offline.syndication``, run through the
contender's index: stories per storm, 1.0 is ideal). CPU is process time per signature
over the vendored validation headlines in batches of 64 (best of 3; the machine is
shared, so compare rows, not absolute numbers). Optional contenders need
``pip install datasketch simhash``; a missing one is reported, not faked.

    python -m bench.bench_novelty
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import command_line, machine, machine_line
from finpulse.resources import dataset_dir
from stream_app.core import novelty as nv
from stream_app.core.novelty_vocab import COMMON_TOKENS
from stream_app.offline.syndication import rewrite

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "tests" / "data" / "novelty"
CORPUS = dataset_dir()
WEIGHTS = {tok: w for w, line in COMMON_TOKENS.items() for tok in line.split()}


@dataclass
class Contender:
    """``sign`` makes opaque signatures for a batch; ``index`` makes an empty index."""

    name: str
    sign: Callable[[Sequence[str]], list[Any]]
    index: Callable[[], Any]  # .observe(sig, item_id) -> story id
    bytes_per_signature: str
    probes: str
    timed: bool = True  # False: its cost is not a signature's (the exact-text baseline)


class _FinpulseIndex:
    def __init__(self) -> None:
        self.index, self.t = nv.StoryIndex(86_400_000, max_keys=100_000), 0

    def observe(self, sig: nv.Signature, item: str) -> str:
        self.t += 1
        return self.index.observe(sig, item, self.t)[0]


def finpulse() -> Contender:
    return Contender("finpulse weighted MinHash, LSH 10x6", nv.signatures, _FinpulseIndex,
                     f"{1 + nv.SLOTS * 4 // 3} chars ({nv.SLOTS} B)", str(nv.BANDS))  # fmt: skip


def exact() -> Contender:
    class Index(dict[str, str]):
        def observe(self, sig: str, item: str) -> str:
            return self.setdefault(sig, item)

    return Contender("exact normalised text", lambda ts: [nv.normalise(t) for t in ts], Index,
                     "the text", "1", timed=False)  # fmt: skip


def datasketch_minhash() -> Contender | str:
    try:
        from datasketch import MinHash, MinHashLSH  # type: ignore[import-untyped]
    except ImportError:
        return "datasketch not installed"

    def sign(texts: Sequence[str]) -> list[Any]:
        out = []
        for t in texts:
            m = MinHash(num_perm=nv.SLOTS)
            m.update_batch([w.encode() for w in nv.tokens(t)] or [t.encode()])
            out.append(m)
        return out

    class Index:
        def __init__(self) -> None:
            self.lsh, self.n = MinHashLSH(num_perm=nv.SLOTS, params=(10, 6)), 0
            self.story: dict[str, str] = {}

        def observe(self, sig: Any, item: str) -> str:
            hits = sorted(self.lsh.query(sig), key=lambda k: int(k.split(":")[0]))
            story = self.story[hits[0]] if hits else item
            key = f"{self.n}:{item}"
            self.n += 1
            self.lsh.insert(key, sig)
            self.story[key] = story
            return story

    return Contender("datasketch MinHash (unweighted), LSH 10x6", sign, Index,
                     f"{nv.SLOTS * 8} B (uint64 x {nv.SLOTS})", "10")  # fmt: skip


def simhash_package(k: int) -> Contender | str:
    try:
        from simhash import Simhash, SimhashIndex  # type: ignore[import-untyped]
    except ImportError:
        return "simhash not installed"

    def features(t: str) -> list[tuple[str, int]]:
        toks = nv.tokens(t)
        feats = [(w, WEIGHTS.get(w, nv.MAX_WEIGHT)) for w in toks]
        return [*feats, ("^" + toks[0], 2 * feats[0][1])] if toks else [(t, 1)]

    class Index:
        def __init__(self) -> None:
            self.index, self.n = SimhashIndex([], k=k), 0
            self.story: dict[str, str] = {}

        def observe(self, sig: Any, item: str) -> str:
            hits = sorted(self.index.get_near_dups(sig), key=int)
            story = self.story[hits[0]] if hits else item
            self.index.add(str(self.n), sig)
            self.story[str(self.n)] = story
            self.n += 1
            return story

    return Contender(f"simhash package, 64 bit weighted, Hamming <= {k}",
                     lambda ts: [Simhash(features(t)) for t in ts], Index, "8 B",
                     f"{k + 1} + compare")  # fmt: skip


def load_pairs() -> dict[str, list[dict[str, str]]]:
    groups: dict[str, list[dict[str, str]]] = {}
    for name in ("real_pairs.jsonl", "synthetic_pairs.jsonl"):
        with (PAIRS / name).open(encoding="utf-8") as fh:
            for row in map(json.loads, fh):
                if row["label"] != "unsure":
                    groups.setdefault(row.get("kind", "real"), []).append(row)
    return groups


def headlines() -> list[str]:
    with (CORPUS / "sentiment_valid.csv").open(newline="", encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def storms(n: int = 80, copies: int = 9, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    pool = [t for t in headlines() if len(t.split()) >= 6]
    return [[s] + [rewrite(s, rng, edits=rng.randint(1, 3)) for _ in range(copies)]
            for s in rng.sample(pool, n)]  # fmt: skip


def measure(c: Contender, groups: dict[str, list[dict[str, str]]], storm_sets: list[list[str]],
            texts: list[str]) -> dict[str, str]:  # fmt: skip
    def repeat(p: dict[str, str]) -> bool:
        index = c.index()
        a, b = c.sign([p["a"], p["b"]])
        index.observe(a, "a")
        return bool(index.observe(b, "b") == "a")

    decided = {k: [(repeat(p), p["label"] == "same") for p in ps] for k, ps in groups.items()}
    real = decided["real"]
    test = [d for d, p in zip(real, groups["real"], strict=True) if p["split"] == "test"]
    tp, test_tp = sum(d and y for d, y in real), sum(d and y for d, y in test)
    rate = {k: sum(d for d, _ in v) / len(v) for k, v in decided.items()}
    stories = []
    for storm in storm_sets:
        index = c.index()
        ids = [index.observe(s, f"i{n}") for n, s in enumerate(c.sign(storm))]
        stories.append(len(set(ids)))
    best = float("inf")
    for _ in range(3 if c.timed else 0):
        start = time.process_time()
        for i in range(0, len(texts), 64):
            c.sign(texts[i : i + 64])
        best = min(best, time.process_time() - start)
    return {
        "real P": f"{tp / max(1, sum(d for d, _ in real)):.3f}",
        "real R": f"{tp / sum(y for _, y in real):.3f}",
        "test P": f"{test_tp / max(1, sum(d for d, _ in test)):.3f}",
        "test R": f"{test_tp / sum(y for _, y in test):.3f}",
        "rewrite R": f"{rate['rewrite']:.3f}",
        "template FP": f"{rate['template']:.3f}",
        "same-co FP": f"{rate['same_company']:.3f}",
        "stories/storm": f"{sum(stories) / len(stories):.2f}",
        "CPU us/sig": f"{best / len(texts) * 1e6:.1f}" if c.timed else "n/a",
    }


def weighted_jaccard(a: str, b: str) -> float:
    """Brute force, as finpulse's sketch estimates it: the first word counts three times."""

    def weights(text: str) -> dict[str, int]:
        toks = nv.tokens(text)
        out = {t: WEIGHTS.get(t, nv.MAX_WEIGHT) for t in toks}
        return out | ({"^" + toks[0]: 2 * out[toks[0]]} if toks else {})

    wa, wb = weights(a), weights(b)
    keys = wa.keys() | wb.keys()
    top = sum(max(wa.get(k, 0), wb.get(k, 0)) for k in keys)
    return sum(min(wa.get(k, 0), wb.get(k, 0)) for k in keys) / top if top else 1.0


def expected(groups: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    """finpulse's metrics in expectation over hash constants: P(repeat) = S-curve(exact s)."""
    p = {k: [(nv.detection_probability(weighted_jaccard(r["a"], r["b"])), r["label"] == "same")
             for r in rows] for k, rows in groups.items()}  # fmt: skip
    tp = sum(q for q, y in p["real"] if y)
    rate = {k: sum(q for q, _ in v) / len(v) for k, v in p.items()}
    return {
        "real P": f"{tp / sum(q for q, _ in p['real']):.3f}",
        "real R": f"{tp / sum(y for _, y in p['real']):.3f}",
        "rewrite R": f"{rate['rewrite']:.3f}",
        "template FP": f"{rate['template']:.3f}",
        "same-co FP": f"{rate['same_company']:.3f}",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-slow", action="store_true", help="only finpulse and exact")
    args = ap.parse_args()
    groups, storm_sets, texts = load_pairs(), storms(), headlines()
    candidates: list[Contender | str] = [finpulse(), exact()]
    if not args.skip_slow:
        candidates += [datasketch_minhash(), simhash_package(3), simhash_package(10)]
    cols = ["real P", "real R", "test P", "test R", "rewrite R", "template FP", "same-co FP",
            "stories/storm", "CPU us/sig"]  # fmt: skip
    print(machine_line(machine()))
    print(f"command: {command_line()}")
    print(f"pairs: real {len(groups['real'])} ({sum(p['label'] == 'same' for p in groups['real'])}"
          f" same), rewrite {len(groups['rewrite'])}, template {len(groups['template'])}, "
          f"same-company {len(groups['same_company'])}; storms {len(storm_sets)} x 10; "
          f"CPU over {len(texts)} headlines")  # fmt: skip
    print("| contender | " + " | ".join(cols) + " | bytes/signature | probes/lookup |")
    print("|---|" + "---:|" * len(cols) + "---|---|")
    for c in candidates:
        if isinstance(c, str):
            print(f"| {c} |" + " |" * (len(cols) + 2))
            continue
        row = measure(c, groups, storm_sets, texts)
        cells = " | ".join(row[k] for k in cols)
        print(f"| {c.name} | {cells} | {c.bytes_per_signature} | {c.probes} |", flush=True)
    row = expected(groups)
    cells = " | ".join(row.get(k, "") for k in cols)
    print(f"| finpulse, expected over hash constants (exact s, S-curve) | {cells} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
