"""附议 detection: which open opinion a new item repeats, in memory. No I/O.

Text is compared as sets of character 3-grams (Chinese needs no word segmentation for this),
estimated by MinHash signatures and looked up through LSH buckets, so a new item is compared
only with the few open opinions that share a band of its signature — not with all of them.
The index is partitioned by district; street and time window are checked on the candidates.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

SHINGLE = 3
BANDS = 32
ROWS = 4
PERMUTATIONS = BANDS * ROWS
# Multiply-shift hashing (odd 64-bit multipliers, wrap-around, top 32 bits) stands in for
# random permutations; a fixed seed makes every replica and run compute the same signatures.
_rng = np.random.default_rng(20260101)
_A = (_rng.integers(1, 1 << 63, PERMUTATIONS, dtype=np.uint64) | np.uint64(1))[:, None]
_B = _rng.integers(0, 1 << 63, PERMUTATIONS, dtype=np.uint64)[:, None]
_MIX = np.uint64(0x9E3779B97F4A7C15)
_HIGH = np.uint64(32)

Signature = npt.NDArray[np.uint32]


def _normalise(text: str) -> npt.NDArray[np.uint64]:
    """Code points of the letters, digits and CJK characters; punctuation and spaces dropped."""
    kept = "".join(ch for ch in text.lower() if ch.isalnum())
    return np.frombuffer(kept.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def shingles(text: str) -> npt.NDArray[np.uint64]:
    """Distinct 32-bit hashes of the character 3-grams (the whole text when shorter)."""
    points = _normalise(text)
    if len(points) == 0:
        return np.zeros(1, dtype=np.uint64)
    if len(points) < SHINGLE:
        points = np.concatenate([points, np.zeros(SHINGLE - len(points), dtype=np.uint64)])
    # A code point has 21 bits, so three fit in one 63-bit integer without collisions.
    packed = (points[:-2] << np.uint64(42)) | (points[1:-1] << np.uint64(21)) | points[2:]
    return np.unique((packed * _MIX) >> _HIGH)


def signature(text: str) -> Signature:
    """MinHash signature: per permutation, the smallest hash of the text's 3-grams."""
    hashed = (_A * shingles(text)[None, :] + _B) >> _HIGH
    return hashed.min(axis=1).astype(np.uint32)


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two texts' 3-gram sets."""
    return float(np.mean(a == b))


@dataclass
class _Entry:
    signature: Signature
    street: str | None
    received_at: datetime


@dataclass(frozen=True)
class Match:
    opinion_id: str
    similarity: float


Buckets = list[dict[int, list[str]]]


class _Partition:
    """One district's open opinions; LSH buckets per street ("" for none), so a new item is
    compared only with its own street's and street-less items, however big the district."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.streets: dict[str, Buckets] = {}

    def buckets(self, street: str | None) -> Buckets:
        return self.streets.setdefault(street or "", [{} for _ in range(BANDS)])

    def searched_for(self, street: str | None) -> list[Buckets]:
        """The buckets an item of ``street`` may match: the same street and none, or all."""
        if not street:
            return list(self.streets.values())
        return [b for key in (street, "") if (b := self.streets.get(key)) is not None]


def _band_keys(sig: Signature) -> list[int]:
    return [hash(sig[b * ROWS : (b + 1) * ROWS].tobytes()) for b in range(BANDS)]


class DuplicateIndex:
    """Open opinions that new items may repeat, by district. Bounded: an entry older than the
    window (it can no longer match) goes when a newer one comes, and beyond ``max_entries``
    the earliest indexed goes first."""

    def __init__(self, threshold: float, window: timedelta, max_entries: int = 200_000) -> None:
        self.threshold = threshold
        self.window = window
        self.max_entries = max_entries
        self.partitions: dict[str, _Partition] = {}
        # In the order indexed, which is mostly the order received.
        self.district_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.district_of)

    def __contains__(self, opinion_id: str) -> bool:
        return opinion_id in self.district_of

    def add(
        self, opinion_id: str, text: str, district: str, street: str | None, received_at: datetime
    ) -> None:
        """Index an open opinion (again, if its text changed)."""
        self.remove(opinion_id)
        self._expire(received_at)
        sig = signature(text)
        keys = _band_keys(sig)
        partition = self.partitions.setdefault(district, _Partition())
        partition.entries[opinion_id] = _Entry(sig, street, received_at)
        for band, key in zip(partition.buckets(street), keys, strict=True):
            band.setdefault(key, []).append(opinion_id)
        self.district_of[opinion_id] = district

    def _expire(self, now: datetime) -> None:
        """Drop the earliest indexed entries while they are out of the window or too many."""
        while self.district_of:
            oldest, district = next(iter(self.district_of.items()))
            too_old = self.partitions[district].entries[oldest].received_at < now - self.window
            if not too_old and len(self.district_of) < self.max_entries:
                return
            self.remove(oldest)

    def remove(self, opinion_id: str) -> None:
        """Forget an opinion (closed, merged, or no longer a case of its own)."""
        district = self.district_of.pop(opinion_id, None)
        if district is None:
            return
        partition = self.partitions[district]
        entry = partition.entries.pop(opinion_id)
        buckets = partition.buckets(entry.street)
        for band, key in zip(buckets, _band_keys(entry.signature), strict=True):
            ids = band[key]
            ids.remove(opinion_id)
            if not ids:
                del band[key]
        if not any(buckets):
            del partition.streets[entry.street or ""]

    def find(self, text: str, district: str, street: str | None, now: datetime) -> Match | None:
        """The most similar open opinion of the same area within the window, if similar enough.
        Same area: the same district, and the same street when both name one."""
        partition = self.partitions.get(district)
        if partition is None:
            return None
        sig = signature(text)
        keys = _band_keys(sig)
        candidates: set[str] = set()
        for buckets in partition.searched_for(street):
            for band, key in zip(buckets, keys, strict=True):
                candidates.update(band.get(key, ()))
        since = now - self.window
        best: Match | None = None
        for opinion_id in candidates:
            entry = partition.entries[opinion_id]
            if entry.received_at < since:
                continue
            score = similarity(sig, entry.signature)
            if score >= self.threshold and (best is None or score > best.similarity):
                best = Match(opinion_id, score)
        return best
