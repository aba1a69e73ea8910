"""附议 detection: which open opinion a new item repeats, in memory. No I/O.

Text is compared as sets of character 3-grams (Chinese needs no word segmentation for this),
estimated by MinHash signatures and looked up through LSH bands, so a new item is compared
only with the few open opinions that share a band of its signature — not with all of them.
The index is partitioned by district and kept in flat arrays (one pass of vectorised compares
finds the candidates; no Python object per band and opinion); street and time window are
checked on the candidates.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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


@dataclass(frozen=True)
class Match:
    opinion_id: str
    similarity: float


# Multiply-shift hashing of a band's four values into one 32-bit key.
_BAND_MIX = (_rng.integers(1, 1 << 63, ROWS, dtype=np.uint64) | np.uint64(1))[None, :]
# Rows are allocated in steps of this, and arrays grow by a quarter: little unused room.
_ROOM = 1024
# How often (in additions) entries that left the window are dropped.
EXPIRE_EVERY = 1000


def band_keys(sig: Signature) -> npt.NDArray[np.uint32]:
    """One 32-bit key per LSH band of the signature: two items that share a key are
    candidates (a false share from hashing only costs a comparison)."""
    rows = sig.reshape(BANDS, ROWS).astype(np.uint64)
    return ((rows * _BAND_MIX).sum(axis=1, dtype=np.uint64) >> _HIGH).astype(np.uint32)


def _street_code(street: str | None) -> int:
    """A street as a number (0: none). Python's string hash: stable within the process."""
    return 0 if not street else hash(street) & 0x7FFF_FFFF_FFFF_FFFF or 1


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class _Partition:
    """One district's open opinions, one row each in flat arrays, ~0.4 kB a row: band keys,
    the signature's low 16 bits (enough to estimate similarity: a false equal value is one
    in 65,536), street and time received. A removed row is filled with the last one."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        # Band by band (a row of keys per band): comparing a key with one band's is one pass.
        self.bands = np.empty((BANDS, _ROOM), np.uint32)
        self.signatures = np.empty((_ROOM, PERMUTATIONS), np.uint16)
        self.streets = np.empty(_ROOM, np.int64)
        self.received = np.empty(_ROOM, np.int64)  # milliseconds since the epoch

    def __len__(self) -> int:
        return len(self.ids)

    def _resize(self, rows: int) -> None:
        n = len(self)
        bands = np.empty((BANDS, rows), np.uint32)
        bands[:, :n] = self.bands[:, :n]
        self.bands = bands
        for name in ("signatures", "streets", "received"):
            old = getattr(self, name)
            new = np.empty((rows, *old.shape[1:]), old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def append(self, opinion_id: str, sig: Signature, street: str | None, at: int) -> int:
        row = len(self)
        if row == len(self.received):
            self._resize(row + max(_ROOM, row // 4))
        self.bands[:, row] = band_keys(sig)
        self.signatures[row] = sig.astype(np.uint16)
        self.streets[row] = _street_code(street)
        self.received[row] = at
        self.ids.append(opinion_id)
        return row

    def remove(self, row: int) -> str | None:
        """Remove ``row``; the id of the last row, moved into its place (None if it was last)."""
        last = len(self) - 1
        moved = None
        if row != last:
            self.bands[:, row] = self.bands[:, last]
            for array in (self.signatures, self.streets, self.received):
                array[row] = array[last]
            moved = self.ids[row] = self.ids[last]
        self.ids.pop()
        if len(self.received) > 4 * _ROOM and len(self) < len(self.received) // 2:
            self._resize(len(self) + _ROOM)
        return moved

    def candidates(self, keys: npt.NDArray[np.uint32], street: str | None, since: int) -> Any:
        """Rows sharing a band with ``keys``, of the same street (or none; any street for an
        item without one), received since ``since``."""
        n = len(self)
        rows = np.unique(np.flatnonzero(self.bands[:, :n] == keys[:, None]) % n)
        if street:
            code = self.streets[rows]
            rows = rows[(code == _street_code(street)) | (code == 0)]
        return rows[self.received[rows] >= since]


class DuplicateIndex:
    """Open opinions that new items may repeat, by district, kept compactly (~0.5 kB each
    with the id). Bounded: entries that left the window are dropped every EXPIRE_EVERY
    additions, and beyond ``max_entries`` the earliest received go first."""

    def __init__(self, threshold: float, window: timedelta, max_entries: int = 200_000) -> None:
        self.threshold = threshold
        self.window = window
        self.max_entries = max_entries
        self.partitions: dict[str, _Partition] = {}
        self.rows: dict[str, tuple[str, int]] = {}  # opinion id → (district, row)
        self.added = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, opinion_id: str) -> bool:
        return opinion_id in self.rows

    def add(
        self,
        opinion_id: str,
        text: str,
        district: str,
        street: str | None,
        received_at: datetime,
        sig: Signature | None = None,
    ) -> None:
        """Index an open opinion (again, if its text changed); ``sig``: the text's signature
        if the caller has it."""
        self.remove(opinion_id)
        partition = self.partitions.setdefault(district, _Partition())
        sig = signature(text) if sig is None else sig
        row = partition.append(opinion_id, sig, street, _millis(received_at))
        self.rows[opinion_id] = (district, row)
        self.added += 1
        if self.added % EXPIRE_EVERY == 0 or len(self.rows) > self.max_entries:
            self._expire(received_at)

    def _expire(self, now: datetime) -> None:
        """Drop the entries out of the window and, beyond ``max_entries``, the earliest
        received (down to 99 % of it, so that this is not done again at the next addition)."""
        cutoff = _millis(now - self.window)
        if len(self.rows) > self.max_entries:
            received = np.concatenate([p.received[: len(p)] for p in self.partitions.values()])
            keep = int(self.max_entries * 0.99)
            cutoff = max(cutoff, int(np.partition(received, -keep)[-keep]))
        for partition in list(self.partitions.values()):
            for row in np.flatnonzero(partition.received[: len(partition)] < cutoff)[::-1]:
                self.remove(partition.ids[row])

    def remove(self, opinion_id: str) -> None:
        """Forget an opinion (closed, merged, or no longer a case of its own)."""
        where = self.rows.pop(opinion_id, None)
        if where is None:
            return
        district, row = where
        partition = self.partitions[district]
        if (moved := partition.remove(row)) is not None:
            self.rows[moved] = (district, row)
        if not partition:
            del self.partitions[district]

    def find(
        self,
        text: str,
        district: str,
        street: str | None,
        now: datetime,
        sig: Signature | None = None,
    ) -> Match | None:
        """The most similar open opinion of the same area within the window, if similar enough.
        Same area: the same district, and the same street when both name one."""
        partition = self.partitions.get(district)
        if partition is None:
            return None
        sig = signature(text) if sig is None else sig
        rows = partition.candidates(band_keys(sig), street, _millis(now - self.window))
        if not len(rows):
            return None
        scores = (partition.signatures[rows] == sig.astype(np.uint16)).mean(axis=1)
        best = int(np.argmax(scores))
        if scores[best] < self.threshold:
            return None
        return Match(partition.ids[rows[best]], float(scores[best]))
