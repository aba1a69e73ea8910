"""Hole 11 of the security review: a model loaded from the routing store cannot run code.

On main, models were pickles in the store: whoever could write the routing database got code
execution in routing the next time a replica loaded the model. Models are now numeric arrays
and a JSON header read with ``allow_pickle=False``; anything else is refused, unrun."""

import io
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.routing import handlers
from services.routing.main import routing_ports
from shared.events import utcnow
from shared.messaging import EventBus
from shared.settings import Settings
from shared.store import Document
from tests.routing_samples import samples


class _CreatesFile:
    """Unpickling this creates ``path``: the harmless stand-in for an attacker's code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


async def _plant(db: AsyncDatabase[Document], version: str, number: int, data: bytes) -> None:
    """Write a model version the way the store lays one out: metadata and one chunk."""
    await db.chunks.insert_one({"_id": f"model-{version}:0", "data": data})
    await db.models.insert_one(
        {
            "_id": version,
            "number": number,
            "labels": ["供水", "学校", "道路"],
            "bytes": len(data),
            "chunks": 1,
            "created_at": utcnow(),
            "source": "planted",
            "dataset_id": None,
            "rows": 0,
            "examples_used": 0,
        }
    )


async def test_hole_11_model_cannot_run_code(
    isolated: Settings, mongo: AsyncMongoClient[Document], tmp_path: Path
) -> None:
    ports = routing_ports(mongo[isolated.database("routing")], EventBus("routing", isolated), 0.0)
    await handlers.train_model(samples(10), "test", ports)
    active = await ports.models.active()
    assert active is not None and active.version == "v1"
    db = ports.models.db
    marker = tmp_path / "planted-code-ran"

    # v2: a pickle compressed the way main stored its models.
    await _plant(db, "v2", 2, zlib.compress(pickle.dumps(_CreatesFile(marker)), 6))
    with pytest.raises(Exception) as refused:
        await ports.models.load("v2")
    assert not marker.exists(), "loading a stored model ran code"
    assert isinstance(refused.value, ValueError)
    assert "not a minyi-nbsvm-1 model" in str(refused.value)

    # v3: v1's own arrays, one of them swapped for an object array that unpickles the payload.
    good = await ports.models._read_chunks("model-v1", 1)
    with np.load(io.BytesIO(good)) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["bias"] = np.array([_CreatesFile(marker)], dtype=object)
    tampered = io.BytesIO()
    np.savez(tampered, **arrays)
    await _plant(db, "v3", 3, tampered.getvalue())
    with pytest.raises(ValueError, match="not a minyi-nbsvm-1 model"):
        await ports.models.load("v3")
    assert not marker.exists(), "loading a tampered model ran code"

    # Refused as the version to activate, and when someone moves the pointer in the store
    # directly: routing keeps the model it had.
    with pytest.raises(ValueError, match="not a minyi-nbsvm-1 model"):
        await ports.models.activate("v2")
    await db.state.replace_one(
        {"_id": "active_model"}, {"_id": "active_model", "version": "v3", "since": utcnow()}
    )
    still = await ports.models.active()
    assert still is not None and still.version == "v1"
    assert still.classifier.predict("水管漏水", "自来水水管漏水").category == "供水"
    assert not marker.exists()
