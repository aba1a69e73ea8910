"""The benchmark's hop chain (tools/hops.py) as real processes on the real broker: every
opinion submitted comes out at the webhook once, and the report says so."""

import pytest

from shared.settings import Settings
from tools import loadtest

from .conftest import PORT_BASE

pytestmark = pytest.mark.e2e


async def test_hop_chain_delivers_each_opinion_once(settings: Settings) -> None:
    # Its own webhook receiver and processes: the session's receiver has PORT_BASE + 99.
    result = await loadtest.hop_ceiling(settings, 30, 4, None, PORT_BASE + 98, PORT_BASE + 50)
    assert (result["accepted"], result["delivered"], result["lost"]) == (30, 30, 0)
    assert result["duplicate_notifications"] == 0 and result["same_delivery_resent"] == 0
    assert result["opinions_per_s"] > 0
    assert result["end_to_end"]["p50_ms"] <= result["end_to_end"]["p99_ms"]
    assert {f"hops-{role}" for role in ("accept", "route", "follow", "notify")} <= set(
        result["processes"]
    )
