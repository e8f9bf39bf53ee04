"""MemoryWindowStore contract details: CAS, tokens, transition reads, isolation."""

from __future__ import annotations

from stream_app.config import WindowSettings
from stream_app.core.detector import DetectorState
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.store.base import EntityCommit, EvidenceItem, SeenEntry, SnapshotRequest
from stream_app.store.memory import MemoryWindowStore
from tests.support.oracles import all_buckets

G = WindowGeometry.of(
    WindowSettings(
        bucket_seconds=60,
        window_seconds=120,
        baseline_seconds=600,
        retention_seconds=600,
        allowed_lateness_seconds=60,
    )
)


A = EvidenceItem(900_000, 0, 5, "a", "h")
B = EvidenceItem(1, 10, 9, "b", "h")


def _commit(version: int, token: str, clock: int, deltas: dict[int, Counts]) -> EntityCommit:
    return EntityCommit(
        entity="market",
        expected_version=version,
        token=token,
        clock_ms=clock,
        first_seen_ms=clock,
        window=Counts(),
        baseline=Counts(),
        detectors={"negative": DetectorState()},
        firing={},
        was_firing=False,
        bucket_deltas=deltas,
        seen={f"id{clock}": SeenEntry(clock, False, ("0:1",))},
        stories={"k1": ("s1", clock)},
        evidence={G.bucket(clock): {"neg": [A, B], "pos": [B, A], "recent": [B, A]}},
        evidence_size=1,
        late=0,
        duplicates=0,
        first_kept_bucket=G.first_kept_bucket(clock),
        first_evidence_bucket=G.window_range(clock).start,
        seen_cutoff_ms=G.seen_cutoff_ms(clock),
        story_cutoff_ms=clock - 86_400_000,
        story_max_keys=100,
    )


async def test_compare_and_set_and_token() -> None:
    s = MemoryWindowStore()
    c = _commit(0, "t1", 60_000, {1: Counts(neg=1)})
    assert await s.commit([c]) == []
    assert await s.commit([c]) == []  # same token: already applied, not applied twice
    assert (await all_buckets(s, "market")) == {1: Counts(neg=1)}
    assert await s.commit([_commit(0, "t2", 60_000, {1: Counts(neg=1)})]) == ["market"]
    assert (await all_buckets(s, "market")) == {1: Counts(neg=1)}


async def test_read_returns_transition_buckets_and_seen() -> None:
    s = MemoryWindowStore()
    deltas = {b: Counts(neu=b) for b in range(1, 11)}
    await s.commit([_commit(0, "t", 10 * 60_000, deltas)])
    request = SnapshotRequest("market", 12 * 60_000 + 5, ["id600000", "x"], ["k1", "k2"])
    snap = (await s.read([request], G))["market"]
    needed = set().union(*G.transition_ranges(10, 12))
    assert set(snap.buckets) == needed & set(deltas)
    assert snap.seen == {"id600000": SeenEntry(600_000, False, ("0:1",))}
    assert snap.stories == {"k1": ("s1", 600_000)}
    assert snap.clock_bucket == Counts(neu=10)
    snap.buckets[9].add(Counts(neg=100))  # the caller's copy, not the store's
    assert (await all_buckets(s, "market"))[9] == Counts(neu=9)
    assert (await s.read_evidence({"market": range(9, 11)}))["market"] == {
        10: {"neg": [A], "pos": [B], "recent": [B]}
    }


async def test_unknown_entity() -> None:
    s = MemoryWindowStore()
    snap = (await s.read([SnapshotRequest("ticker:X", 1, [])], G))["ticker:X"]
    assert snap.version == 0
    assert snap.clock_ms is None
    assert await s.entity_view("ticker:X") is None
    assert await s.firing_alerts() == []
