"""The test suite. ``MINYI_TEST_NOW`` (an ISO instant, e.g. ``2026-12-31T23:59:00+08:00``)
runs the whole suite as if that were now: it becomes ``MINYI_CLOCK_OFFSET_SECONDS`` for this
process and every service the tests start, before any of them reads the clock."""

import os
from datetime import UTC, datetime

if pinned := os.environ.get("MINYI_TEST_NOW"):
    at = datetime.fromisoformat(pinned)
    if at.tzinfo is None:
        raise SystemExit(f"MINYI_TEST_NOW must name its time zone, e.g. +08:00: {pinned!r}")
    os.environ["MINYI_CLOCK_OFFSET_SECONDS"] = str((at - datetime.now(UTC)).total_seconds())
