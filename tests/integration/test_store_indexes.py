"""`minyi store indexes` (the chart's setup Job) on the real store."""

from pymongo import AsyncMongoClient

from shared.settings import Settings
from shared.store import Document
from tools.cli import INDEXES, create_indexes


async def test_store_indexes_are_created_and_creating_them_again_changes_nothing(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    first = await create_indexes(isolated)
    again = await create_indexes(isolated)
    assert first == again
    assert len(first) == len(INDEXES)
    for service, collection, field in INDEXES:
        info = await mongo[isolated.database(service)][collection].index_information()
        assert info[f"{field}_1"]["key"] == [(field, 1)], (service, collection)
    for service in {s for s, _, _ in INDEXES}:
        await mongo.drop_database(isolated.database(service))
