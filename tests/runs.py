"""Test runs on the shared broker and store: each is named by when it started, and removes what
runs killed before their end left behind.

A run killed before its end (CI's 90-minute limit, a session's hard stop) leaves its vhost,
broker users and databases. With 30 such vhosts on the broker, RabbitMQ's management API
answered too slowly for the tests' timeouts (a reconnect test failed 7 times of 7; with them
gone it passed). Times are the machine's real clock, never the tests' moved one."""

import re
import secrets
import time

from shared import broker_admin
from shared.settings import Settings
from shared.store import mongo_client

# No run lasts this long (CI stops one at 90 minutes), so a run started earlier is dead.
STALE_AFTER_SECONDS = 3 * 3600
# ``minyi-test-<start, 8 hex digits of seconds><4 random hex digits>``, and a test's own
# vhosts ``…-<suffix>`` within it (an isolated test's, say).
_VHOST = re.compile(r"minyi-test-(?P<run>(?P<started>[0-9a-f]{8})[0-9a-f]{4})(-[0-9a-z-]+)?")


def new_run(now: float | None = None) -> str:
    """The name of a run starting now: its start time in hex seconds, then 4 random digits."""
    return f"{int(time.time() if now is None else now):08x}{secrets.token_hex(2)}"


async def remove_stale_runs(settings: Settings) -> list[str]:
    """Delete the vhosts, broker users and databases of runs that started more than
    STALE_AFTER_SECONDS ago; returns the runs removed."""
    oldest = time.time() - STALE_AFTER_SECONDS
    with broker_admin._client(settings) as http:
        vhosts = [v["name"] for v in http.get("/api/vhosts").raise_for_status().json()]
    stale: dict[str, list[str]] = {}
    for vhost in vhosts:
        if (found := _VHOST.fullmatch(vhost)) and int(found["started"], 16) < oldest:
            stale.setdefault(found["run"], []).append(vhost)
    for own in stale.values():
        for vhost in own:  # with its service users
            broker_admin.delete_vhost(settings.model_copy(update={"amqp_vhost": vhost}))
    if not stale:
        return []
    client = mongo_client(settings)
    try:
        for name in await client.list_database_names():
            if any(name.startswith(f"test{run}") for run in stale):
                await client.drop_database(name)
    finally:
        await client.close()
    return sorted(stale)
