"""The event contract: envelope, versioned types, routing keys, topology coverage."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import asyncapi, topology
from shared.events import (
    EVENT_TYPES,
    AssignmentSigned,
    CloudEvent,
    FeedbackReceived,
    MemberEnrolled,
    Rating,
    UnknownEventType,
)

NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def test_envelope_is_cloudevents_structured_json() -> None:
    data = AssignmentSigned(opinion_id="op1", office_id="o1", department="housing", signed_at=NOW)
    event = CloudEvent.wrap("/minyi/followup", data)
    wire = CloudEvent.model_validate_json(event.model_dump_json())
    assert wire.specversion == "1.0"
    assert wire.type == "minyi.assignment.signed.v1"
    assert wire.subject == "op1"
    assert wire.datacontenttype == "application/json"
    assert wire.payload() == data


def test_phone_and_id_numbers_never_leave_in_an_event() -> None:
    rated = FeedbackReceived(
        opinion_id="op1",
        office_id="o1",
        rating=Rating.SATISFIED,
        comment="很好，电话 13912345678，身份证 110101199003071234",
        rated_at=NOW,
    )
    event = CloudEvent.wrap("/minyi/followup", rated)
    assert event.data["comment"] == "很好，电话 139****5678，身份证 110101********1234"
    enrolled = MemberEnrolled(member_id="m1", office_id="o1", member_name="周委员", kind="委员")
    member_event = CloudEvent.wrap("/minyi/intake", enrolled)
    # About a member, not an opinion: the member is the subject.
    assert (member_event.subject, member_event.routing_key()) == ("m1", "member.enrolled")


def test_department_events_end_with_the_department_code() -> None:
    signed = AssignmentSigned(opinion_id="op1", office_id="o1", department="housing", signed_at=NOW)
    rated = FeedbackReceived(
        opinion_id="op1", office_id="o1", rating=Rating.SATISFIED, comment="", rated_at=NOW
    )
    assert signed.routing_key() == "assignment.signed.housing"
    assert rated.routing_key() == "feedback.received"


def test_department_code_cannot_inject_routing_key_words() -> None:
    with pytest.raises(ValidationError):
        AssignmentSigned(opinion_id="op1", office_id="o1", department="a.#", signed_at=NOW)


def test_unknown_type_is_refused() -> None:
    event = CloudEvent(id="1", source="/x", type="minyi.nope.v1", time=NOW, subject="s", data={})
    with pytest.raises(UnknownEventType):
        event.payload()


def _matches(binding: str, key: str) -> bool:
    pattern, words = binding.split("."), key.split(".")
    if pattern == ["#"]:
        return True
    return len(pattern) == len(words) and all(
        p in ("*", w) for p, w in zip(pattern, words, strict=True)
    )


def test_every_event_type_has_a_consumer_so_publishing_never_hits_no_route() -> None:
    for cls in EVENT_TYPES.values():
        key = cls.name + (".housing" if cls.to_department else "")
        bound = [b for keys in topology.BINDINGS.values() for b in keys if _matches(b, key)]
        assert bound, cls.name


def test_asyncapi_document_lists_every_event_with_its_payload_schema() -> None:
    doc = asyncapi.document()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert "opinion.assigned.{department}" in addresses
    assert len(doc["components"]["messages"]) == len(EVENT_TYPES)
    assert "tracking_no" in doc["components"]["schemas"]["OpinionReceived"]["properties"]


def test_committed_asyncapi_document_is_current() -> None:
    committed = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
    assert json.loads(committed.read_text(encoding="utf-8")) == json.loads(
        json.dumps(asyncapi.document(), ensure_ascii=False)
    ), "docs/asyncapi.json is stale: run `make docs`"
