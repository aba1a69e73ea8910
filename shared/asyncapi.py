"""The AsyncAPI 3.0 document of the event contract, generated from the pydantic payloads."""

from typing import Any

from shared import topology
from shared.events import CE_CONTENT_TYPE, EVENT_TYPES, CloudEvent


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEvent": CloudEvent.model_json_schema()}
    operations: dict[str, Any] = {}
    for event_type, cls in EVENT_TYPES.items():
        key = cls.name + (".{department}" if cls.to_department else "")
        schema = cls.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[cls.__name__] = schema
        messages[cls.__name__] = {
            "name": event_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip(),
            "contentType": CE_CONTENT_TYPE,
            "payload": {
                "allOf": [{"$ref": "#/components/schemas/CloudEvent"}],
                "properties": {
                    "type": {"const": event_type},
                    "data": {"$ref": f"#/components/schemas/{cls.__name__}"},
                },
            },
        }
        channel_id = cls.name.replace(".", "_")
        channels[channel_id] = {
            "address": key,
            "messages": {cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": topology.EVENTS.name, "type": "topic", "durable": True},
                }
            },
        }
        if cls.to_department:
            channels[channel_id]["parameters"] = {
                "department": {"description": "Department code (部门编码)"}
            }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Minyi events (民意直通车事件)",
            "version": "1.0.0",
            "description": (
                f"Domain events on the topic exchange `{topology.EVENTS.name}`, CloudEvents 1.0 "
                "structured JSON, persistent, published with confirms."
            ),
        },
        "defaultContentType": CE_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
