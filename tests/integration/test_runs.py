"""Test runs on the shared broker and store: what a killed run left is removed by a later run,
once it is older than any run lasts (tests/runs.py)."""

import time

import httpx
from pymongo import AsyncMongoClient

from shared import broker_admin
from shared.settings import SERVICES, Settings
from shared.store import Document, drop_databases

from ..runs import STALE_AFTER_SECONDS, new_run, remove_stale_runs


def _left_behind(settings: Settings, started: float) -> Settings:
    run = new_run(started)
    return settings.model_copy(
        update={"amqp_vhost": f"minyi-test-{run}", "db_prefix": f"test{run}"}
    )


def _names(http: httpx.Client, kind: str) -> set[str]:
    return {item["name"] for item in http.get(f"/api/{kind}").raise_for_status().json()}


async def test_a_run_removes_what_runs_started_long_ago_left_and_nothing_else(
    settings: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    now = time.time()
    dead = _left_behind(settings, now - STALE_AFTER_SECONDS - 60)
    living = _left_behind(settings, now - 60)
    try:
        for run in (dead, living):
            broker_admin.setup(run)
            await mongo[run.database("intake")].opinions.insert_one({"_id": "left"})

        removed = await remove_stale_runs(settings)

        assert dead.db_prefix.removeprefix("test") in removed
        assert living.db_prefix.removeprefix("test") not in removed
        with broker_admin._client(settings) as http:
            vhosts, users = _names(http, "vhosts"), _names(http, "users")
        assert dead.amqp_vhost not in vhosts
        assert not {dead.amqp_user(s) for s in SERVICES} & users
        assert {living.amqp_vhost, settings.amqp_vhost} <= vhosts
        assert {living.amqp_user(s) for s in SERVICES} <= users
        databases = await mongo.list_database_names()
        assert dead.database("intake") not in databases
        assert living.database("intake") in databases
    finally:
        for run in (dead, living):
            broker_admin.delete_vhost(run)
            await drop_databases(run)
