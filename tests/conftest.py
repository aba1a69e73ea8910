"""Fixtures shared by the integration and end-to-end tests: an isolated vhost and database
prefix on the real RabbitMQ and document store that ``make test`` starts."""

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient

from shared import broker_admin
from shared.settings import SERVICES, Settings
from shared.store import Document, drop_databases, mongo_client

from .runs import new_run, remove_stale_runs


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings of this test run: its own vhost and databases, short retry delays."""
    run = new_run()
    port_base = int(os.environ.get("MINYI_TEST_PORT_BASE", "18000"))
    env = {
        "MINYI_DB_PREFIX": f"test{run}",
        "MINYI_AMQP_VHOST": f"minyi-test-{run}",
        "MINYI_RETRY_DELAYS_MS": "[200,400]",
        "MINYI_MAX_ATTEMPTS": "3",
        "MINYI_OUTBOX_SWEEP_SECONDS": "1",
        "MINYI_FOLLOWUP_PUBLIC_URL": f"http://127.0.0.1:{port_base + 3}",
        # The local dev stack's rules, with this run's own random secrets and broker users.
        "MINYI_ENV": "local",
        "MINYI_TRACKING_KEY": secrets.token_urlsafe(32),
        "MINYI_FEEDBACK_KEY": secrets.token_urlsafe(32),
        "MINYI_SESSION_KEY": secrets.token_urlsafe(32),
        "MINYI_AMQP_PASSWORDS": json.dumps({s: secrets.token_urlsafe(24) for s in SERVICES}),
        # The tests poll and fuzz with a few keys; tests/integration/test_security_limits.py
        # shows the limit itself.
        "MINYI_RATE_LIMIT_PER_MINUTE": "1000000",
        # Webhooks may reach only this run's own receivers (tests/e2e and tests/integration).
        "MINYI_WEBHOOK_ALLOW": json.dumps(
            [f"127.0.0.1:{port_base + 99}", f"127.0.0.1:{port_base + 100}-{port_base + 999}"]
        ),
    }
    os.environ.update(env)
    test_settings = Settings()
    try:
        asyncio.run(remove_stale_runs(test_settings))
        broker_admin.setup(test_settings)
    except Exception as exc:
        pytest.fail(f"RabbitMQ management API unreachable ({exc}); start the stack: make stack")
    yield test_settings
    broker_admin.delete_vhost(test_settings)
    asyncio.run(drop_databases(test_settings))


@pytest.fixture
async def mongo(settings: Settings) -> AsyncIterator[AsyncMongoClient[Document]]:
    client = mongo_client(settings)
    try:
        await client.admin.command("ping")
    except Exception as exc:
        pytest.fail(f"document store unreachable ({exc}); start the stack: make stack")
    yield client
    await client.close()
