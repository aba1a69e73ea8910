"""Structured JSON logs and Prometheus metrics shared by every service."""

import json
import logging
import sys
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

EVENTS_HANDLED = Counter(
    "minyi_events_handled_total",
    "Events taken off a work queue, by outcome (ok, retried, parked).",
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
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
