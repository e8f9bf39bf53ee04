"""Regenerate ``synthetic_pairs.jsonl``: syndicated rewrites and hard negatives, by seed.

    python -m tests.data.novelty.make_synthetic    # rewrites the committed file

(tests/stream_app/core/test_novelty.py fails when the committed file is not what this writes.)

Three kinds of labelled pairs complement the hand-labelled real pairs (``real_pairs.jsonl``):

* ``rewrite`` (same story): a real headline of the vendored corpus and a copy made by
  ``stream_app.offline.syndication.rewrite`` (1-3 edits: source tags, case, punctuation,
  links and cashtags, a verb swapped, truncation, number formats), or two such copies.
* ``template`` (different stories): one headline template filled with two different
  companies and the same numbers -- "Apple shares fall 3% after earnings miss" vs
  "Tesla shares fall 3% after earnings miss". On the ``market`` and topic entities these
  arrive in one index, so they must not merge. One side sometimes carries a rewrite edit.
* ``same_company`` (different stories): two templates about one company -- "Tesla recalls
  ..." vs "Tesla cuts its outlook ..." -- the everyday case of a per-ticker index.

The templates and names below are typed here on purpose: they are the test's vocabulary,
not product data.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

from finpulse.resources import dataset_dir
from stream_app.offline.syndication import rewrite

HERE = Path(__file__).resolve().parent
OUT = HERE / "synthetic_pairs.jsonl"
CORPUS = dataset_dir()
SEED = 20261130

COMPANIES: tuple[tuple[str, str], ...] = (
    ("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Amazon", "AMZN"), ("Alphabet", "GOOGL"),
    ("Meta", "META"), ("Tesla", "TSLA"), ("Nvidia", "NVDA"), ("JPMorgan", "JPM"),
    ("Bank of America", "BAC"), ("Exxon Mobil", "XOM"), ("Walmart", "WMT"), ("Disney", "DIS"),
    ("Netflix", "NFLX"), ("Intel", "INTC"), ("AMD", "AMD"), ("Boeing", "BA"),
    ("Coca-Cola", "KO"), ("Pfizer", "PFE"), ("Goldman Sachs", "GS"), ("Nike", "NKE"),
    ("Ford", "F"), ("General Motors", "GM"), ("Starbucks", "SBUX"), ("Oracle", "ORCL"),
    ("Salesforce", "CRM"), ("Chevron", "CVX"), ("Citigroup", "C"), ("Wells Fargo", "WFC"),
    ("Uber", "UBER"), ("PayPal", "PYPL"), ("Qualcomm", "QCOM"), ("Merck", "MRK"),
    ("Caterpillar", "CAT"), ("3M", "MMM"), ("Home Depot", "HD"), ("McDonald's", "MCD"),
    ("Moderna", "MRNA"), ("Snap", "SNAP"), ("Carnival", "CCL"), ("Delta Air Lines", "DAL"),
)  # fmt: skip
BROKERS = ("Morgan Stanley", "Goldman Sachs", "Barclays", "UBS", "Jefferies", "Citi")
TEMPLATES: tuple[str, ...] = (
    "{co} shares fall {n}% after earnings miss",
    "{co} shares jump {n}% after earnings beat",
    "{co} cuts full-year revenue outlook, shares slide {n}%",
    "{co} to cut {k},000 jobs in restructuring",
    "{co} CEO steps down effective immediately",
    "{co} recalls {k}00,000 vehicles over safety defect",
    "{co} downgraded to sell at {broker}, price target cut to ${p}",
    "{co} upgraded to buy at {broker} on margin recovery",
    "{co} faces SEC probe over accounting practices",
    "{co} agrees to buy rival for ${k} billion in cash",
    "{co} announces ${k} billion share buyback",
    "{co} misses quarterly revenue estimates as demand weakens",
    "{co} suspends dividend to preserve cash",
    "{co} hit with class action lawsuit by shareholders",
    "{co} stock price target raised to ${p} from ${q} at {broker}",
    "{co} reports data breach affecting {k} million customers",
    "{co} to report second quarter 2022 results on August {d}",
    "{co} Q2 2022 Earnings Preview",
    "{co} goes ex-dividend tomorrow",
    "{co} says supply chain disruptions will hurt quarterly profit",
)


def _fill(template: str, company: str, rng: random.Random, slots: dict[str, str]) -> str:
    return template.format(co=company, **slots)


def _slots(rng: random.Random) -> dict[str, str]:
    p = rng.randint(20, 400)
    return {
        "n": str(rng.randint(2, 25)),
        "k": str(rng.randint(2, 9)),
        "p": str(p),
        "q": str(p - rng.randint(2, 15)),
        "d": str(rng.randint(1, 12)),
        "broker": rng.choice(BROKERS),
    }


def _corpus_headlines(exclude: set[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for name in ("sentiment_train", "sentiment_valid", "topic_train", "topic_valid"):
        with (CORPUS / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                text = " ".join(row["text"].split())
                if len(text.split()) >= 5 and text not in seen and text not in exclude:
                    seen.add(text)
                    out.append(text)
    return out


def generate(seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    real = [json.loads(line) for line in (HERE / "real_pairs.jsonl").open(encoding="utf-8")]
    exclude = {" ".join(p[k].split()) for p in real for k in ("a", "b")}
    headlines = _corpus_headlines(exclude)
    pairs: list[dict[str, str]] = []

    for text in rng.sample(headlines, 300):
        copy = rewrite(text, rng, edits=rng.randint(1, 3), ticker=None)
        pairs.append({"kind": "rewrite", "label": "same", "a": text, "b": copy})
    for text in rng.sample(headlines, 100):
        one = rewrite(text, rng, edits=rng.randint(1, 2))
        two = rewrite(text, rng, edits=rng.randint(1, 2))
        pairs.append({"kind": "rewrite", "label": "same", "a": one, "b": two})

    for _ in range(200):
        template = rng.choice(TEMPLATES)
        (c1, t1), (c2, _t2) = rng.sample(COMPANIES, 2)
        slots = _slots(rng)
        a, b = _fill(template, c1, rng, slots), _fill(template, c2, rng, slots)
        if rng.random() < 0.5:
            b = rewrite(b, rng, edits=1, allowed=("prefix", "suffix", "case", "link"))
        pairs.append({"kind": "template", "label": "different", "a": a, "b": b})

    for _ in range(150):
        t1, t2 = rng.sample(TEMPLATES, 2)
        company, ticker = rng.choice(COMPANIES)
        a = _fill(t1, company, rng, _slots(rng))
        b = rewrite(_fill(t2, company, rng, _slots(rng)), rng, edits=1, ticker=ticker)
        pairs.append({"kind": "same_company", "label": "different", "a": a, "b": b})
    return pairs


def render(pairs: list[dict[str, str]]) -> str:
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)


def main() -> int:
    OUT.write_text(render(generate()), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
