"""Structured JSON logs and Prometheus metrics shared by every service."""

import json
import logging
import re
import sys
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram
from pymongo import monitoring

from shared.privacy import mask_strings

EVENTS_HANDLED = Counter(
    "minyi_events_handled_total",
    "Events taken off a work queue, by outcome (ok, retried, busy, parked).",
    ["service", "type", "outcome"],
)
EVENTS_PUBLISHED = Counter(
    "minyi_events_published_total", "Events published with confirm.", ["service", "type"]
)
HANDLER_SECONDS = Histogram(
    "minyi_handler_seconds", "Time spent in an event handler.", ["service", "type"]
)
QUEUE_LAG_SECONDS = Histogram(
    "minyi_event_lag_seconds",
    "Age of an event when its handler starts (time spent waiting in queues).",
    ["service"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
STORE_SECONDS = Histogram(
    "minyi_store_command_seconds",
    "Round trips to the document store, by command and collection.",
    ["command", "collection"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)


class StoreCommandTimer(monitoring.CommandListener):
    """Times every command the driver sends, so the store's share of the work shows per
    collection (on FerretDB, a command that is not a lookup by _id scans the collection)."""

    def __init__(self) -> None:
        self._collections: dict[tuple[object, int], str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self._collections[(event.connection_id, event.request_id)] = (
            target if isinstance(target, str) else ""
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._observe(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._observe(event)

    def _observe(
        self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent
    ) -> None:
        collection = self._collections.pop((event.connection_id, event.request_id), "")
        STORE_SECONDS.labels(event.command_name, collection).observe(event.duration_micros / 1e6)


# Extra attributes copied from a log record into the JSON line; never personal data.
_CONTEXT_FIELDS = ("service", "event_id", "event_type", "opinion_id", "attempt", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            if (value := getattr(record, field, None)) is not None:
                line[field] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        # Whatever a message or traceback quotes, no full phone or ID number is written.
        return json.dumps(mask_strings(line), ensure_ascii=False)


class MaskSecretsInPaths(logging.Filter):
    """Request paths in access logs lose the credentials some of them carry: the submitter's
    single-use feedback token (/feedback/<token>) and the tracking lookup code (?code=)."""

    SECRETS = re.compile(r"(/feedback/|[?&]code=)[^/?&#\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.SECRETS.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("uvicorn.access").addFilter(MaskSecretsInPaths())
