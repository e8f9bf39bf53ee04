"""Company linker: matching rules, spans, relevance, bounds, alias files, gold quality.

Behaviour tests build tiny linkers from rows so each rule is visible in the test; the
gold test uses the packaged table and the hand-labelled headlines in tests/data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finpulse.resources import alias_files
from stream_app.core.entities import extract_cashtags
from stream_app.core.linking import (
    AliasFileError,
    AliasRule,
    CompanyLinker,
    NameLink,
    merge_links,
    read_alias_rows,
    read_user_aliases,
)

GOLD = Path(__file__).resolve().parents[2] / "data" / "linking_gold.jsonl"
TABLE, OVERRIDES, STOPLIST = alias_files()


def tickers(linker: CompanyLinker, text: str) -> list[str]:
    return [lk.ticker for lk in linker.link(text)]


def written(text: str, link: NameLink) -> str:
    assert link.span is not None
    return text[link.span[0] : link.span[1]]


@pytest.fixture(scope="module")
def packaged() -> CompanyLinker:
    return CompanyLinker.from_files(TABLE, OVERRIDES, STOPLIST)


@pytest.fixture
def small() -> CompanyLinker:
    return CompanyLinker.from_rows(
        [
            ("Apple", "AAPL", True),
            ("Apple Hospitality", "APLE", False),
            ("Tesla", "TSLA", False),
            ("GE", "GE", False),
            ("Bank of America", "BAC", False),
            ("Target", "TGT", True),
            ("Goldman Sachs", "GS", False),
        ],
        rules=[
            AliasRule("Target", "not_after", frozenset({"price"})),
            AliasRule("Target", "not_before", frozenset({"price"})),
            AliasRule("Goldman Sachs", "broker"),
        ],
    )


def test_longest_match_wins_and_span_points_at_it(small: CompanyLinker) -> None:
    text = "Apple Hospitality REIT raises its dividend"
    (link,) = small.link(text)
    assert link.ticker == "APLE"
    assert written(text, link) == "Apple Hospitality"
    assert link.via == "name"


def test_word_boundaries(small: CompanyLinker) -> None:
    assert tickers(small, "Teslas and Pineapple growers") == []
    assert tickers(small, "#Tesla deliveries beat") == ["TSLA"]
    assert tickers(small, "$Tesla is a cashtag, left to the caller") == []
    assert tickers(small, "Tesla's deliveries beat") == ["TSLA"]


def test_case_rules(small: CompanyLinker) -> None:
    assert tickers(small, "tesla deliveries beat") == []  # never all lower case
    assert tickers(small, "TESLA DELIVERIES BEAT") == ["TSLA"]
    assert tickers(small, "GE beats estimates") == ["GE"]
    assert tickers(small, "Ge beats estimates") == []  # short names exactly as spelled
    assert tickers(small, "an apple a day") == []


def test_stoplist_and_common_word_context(packaged: CompanyLinker) -> None:
    negatives = [
        "Analysts raise their price target on the sector",
        "Target price cut by analysts",
        "New visa rules for skilled workers",
        "Apple harvest falls as drought bites",
        "CBI Detected 894 Shell Companies In Four Years",
        "Shell company used to hide the funds",
        "Fires rage across the Amazon rainforest",
        "There is a gap in the chart",
        "A Gap Up on the open",
        "Harrison Ford stars in the sequel",
        "Carson Block says short sellers are under scrutiny",
        "Saudi Arabia to Block Return of Expats",
        "Southern California braces for a heatwave",
        "Apple Bank to Eliminate Bounced Check Fees",
        "Meta-analysis finds no effect",
        "Jerome Powell speaks on Thursday",
    ]
    for text in negatives:
        assert tickers(packaged, text) == [], text
    positives = {
        "Ford recalls 300,000 trucks": ["F"],
        "Shell to buy stakes in three oil blocks offshore Colombia": ["SHEL"],
        "Target shares surge after company raises forecast": ["TGT"],
        "Visa and Mastercard face fee probe": ["V", "MA"],
        "Why Visa's Stock Price Could Keep Rising": ["V"],
        "Amazon to open a distribution center in Florida": ["AMZN"],
    }
    for text, want in positives.items():
        assert tickers(packaged, text) == want, text


def test_broker_as_source_is_not_a_link(small: CompanyLinker, packaged: CompanyLinker) -> None:
    assert tickers(small, "Goldman Sachs upgrades Tesla to buy") == ["TSLA"]
    assert tickers(small, "Goldman Sachs to cut 3,200 jobs") == ["GS"]
    assert tickers(packaged, "Rio Tinto downgraded to neutral from overweight at J.P. Morgan") == [
        "RIO"
    ]
    assert tickers(packaged, "Buy Las Vegas Sands as travel builds, Wells Fargo says") == ["LVS"]
    assert tickers(packaged, "Wells Fargo misses analysts' earnings estimates") == ["WFC"]


def test_spans_point_at_the_name_as_written(packaged: CompanyLinker) -> None:
    text = "Johnson &amp; Johnson and McDonald’s rally; TESLA slips"
    found = {lk.ticker: written(text, lk) for lk in packaged.link(text)}
    assert found == {"JNJ": "Johnson &amp; Johnson", "MCD": "McDonald’s", "TSLA": "TESLA"}
    # An expanding lower-case mapping (İ -> i̇) must not shift the spans.
    text = "İİİ Tesla recalls cars"
    (link,) = packaged.link(text)
    assert written(text, link) == "Tesla"


def test_relevance_subject_beats_passing_mention_and_decreases_with_count(
    packaged: CompanyLinker,
) -> None:
    links = packaged.link("Nvidia jumps after earnings beat, lifting chip peers such as Intel")
    assert [lk.ticker for lk in links] == ["NVDA", "INTC"]
    assert links[0].relevance > links[1].relevance
    alone = packaged.link("Nvidia jumps after earnings beat")[0].relevance
    roundup = packaged.link("Nvidia, Intel, Micron, Qualcomm and Broadcom jump")
    assert alone == 1.0
    assert all(0 < lk.relevance <= 0.5 for lk in roundup)
    assert all(0 < lk.relevance <= 1 for lk in links)


def test_output_is_bounded_for_pathological_input(packaged: CompanyLinker) -> None:
    names = [a for a, _, common in read_alias_rows(TABLE) if not common]
    every = ", ".join(names)[:10_000]
    links = packaged.link(every, max_links=16)
    assert len(links) == 16
    repeated = ("Tesla recalls cars. " * 600)[:10_000]
    (link,) = packaged.link(repeated, max_links=16)
    assert link.ticker == "TSLA"
    assert link.span == (0, 5)
    assert packaged.link("Tesla", max_links=0) == []
    assert packaged.link("") == []


def test_user_aliases_add_and_override(tmp_path: Path) -> None:
    user = tmp_path / "desk.csv"
    user.write_text("alias,ticker\n# our names\nTesla,TSLQ\nAcme Widgets,$acme\n", encoding="utf-8")
    linker = CompanyLinker.from_files(TABLE, OVERRIDES, STOPLIST, user)
    assert tickers(linker, "Acme Widgets and Tesla report") == ["ACME", "TSLQ"]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("alias,ticker\nTesla,TSLA\nNoTicker\n", 3, "expected 2 columns"),
        ("Tesla,TSLA\nAcme,12AB\n", 2, "does not match"),
        ("Tesla,TSLA,extra\n", 1, "expected 2 columns"),
        ("Tesla,TSLA\n\n  ,ACME\n", 3, "empty alias"),
        ("Tesla,TSLA\n" + "x" * 101 + ",ACME\n", 2, "longer than"),
        ("Tesla,TSLA\n---,ACME\n", 2, "no letter or digit"),
    ],
)
def test_bad_user_alias_row_names_file_and_line(
    tmp_path: Path,
    content: str,
    line: int,
    message: str,
) -> None:
    path = tmp_path / "aliases.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AliasFileError, match=message) as err:
        read_user_aliases(path)
    assert f"{path}:{line}:" in str(err.value)


def test_unreadable_user_alias_files(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("Nestl\xe9,NESN.SW\n".encode("latin-1"))
    with pytest.raises(AliasFileError, match="not UTF-8"):
        read_user_aliases(bad)
    with pytest.raises(AliasFileError, match="cannot read"):
        read_user_aliases(tmp_path / "missing.csv")


def test_gold_precision_and_recall(packaged: CompanyLinker) -> None:
    """Targets of issue 10 on the hand-labelled headlines (cashtags + names, in-universe)."""
    universe = {t for _, t, _ in read_alias_rows(TABLE)}
    universe |= {t for _, t, _ in read_alias_rows(OVERRIDES)}
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 300
    assert sum("$" not in r["text"] for r in rows) >= 0.8 * len(rows)
    tp = fp = fn = 0
    errors: list[str] = []
    for r in rows:
        gold = set(r["tickers"])
        assert gold <= universe, r
        pred = {lk.ticker for lk in packaged.link(r["text"])}
        pred |= set(extract_cashtags(r["text"])) & universe
        tp += len(pred & gold)
        fp += len(pred - gold)
        fn += len(gold - pred)
        if pred != gold:
            errors.append(f"FP {sorted(pred - gold)} FN {sorted(gold - pred)}: {r['text'][:90]}")
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    report = "\n".join(errors)
    assert precision >= 0.95, f"precision {precision:.3f} ({tp} tp, {fp} fp)\n{report}"
    assert recall >= 0.90, f"recall {recall:.3f} ({tp} tp, {fn} fn)\n{report}"


def test_merge_keeps_explicit_precedence_and_bounds(packaged: CompanyLinker) -> None:
    text = "$TSLA Tesla and Ford recall cars"
    names = packaged.link(text)
    assert [lk.ticker for lk in names] == ["TSLA", "F"]
    merged = merge_links(
        [("TSLA", "cashtag", (0, 5)), ("GM", "field", None)], names, len(text), max_links=3
    )
    assert [(lk.ticker, lk.via, lk.span) for lk in merged] == [
        ("TSLA", "cashtag", (0, 5)),
        ("GM", "field", None),
        ("F", "name", (16, 20)),
    ]
    assert merged[1].relevance == round(1 / 3**0.5, 4)  # a field ticker is a subject
    assert merged[2].relevance < merged[0].relevance
    assert len(merge_links([], names, len(text), max_links=1)) == 1
