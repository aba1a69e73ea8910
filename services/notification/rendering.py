"""Chinese notification texts from Jinja2 templates, per event type and recipient role.

A template renders to plain text: its first line is the subject (also the SMS text), the rest
the body. Lookup order: an override stored by an administrator for (event, role), then the
built-in files ``templates/<event>.<role>.j2``, ``templates/<event>.j2``, ``templates/default.j2``.
Templates run sandboxed with strict undefined variables, so a broken one fails loudly."""

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

from shared.clock import closing_day
from shared.events import EVENT_TYPES, CloudEvent
from shared.privacy import mask_strings

from .domain import LOCAL_TIME, RecipientRole

TEMPLATES = Path(__file__).parent / "templates"

GREETINGS = {
    RecipientRole.OFFICE: "您好",
    RecipientRole.DEPARTMENT: "承办单位负责同志",
    RecipientRole.SUPERVISOR: "督查室负责同志",
    RecipientRole.MEMBER: "尊敬的委员、代表",
}


class TemplateError(Exception):
    """A template could not be compiled or rendered; the message says where and why."""


class Rendered(BaseModel):
    subject: str
    text: str


def _instant(value: str | datetime) -> datetime:
    """An event's time as the template sees it: ISO text (from JSON) or a datetime."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _local(value: str | datetime) -> str:
    """``2026-10-01T01:30:00Z`` → ``2026-10-01 09:30`` (Beijing time)."""
    return _instant(value).astimezone(LOCAL_TIME).strftime("%Y-%m-%d %H:%M")


def _day(value: str | datetime) -> str:
    """A deadline stored as 24:00 Beijing time → the day it closes (``2026-12-22``)."""
    return closing_day(_instant(value)).isoformat()


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["local"] = _local
    env.filters["day"] = _day
    return env


_ENV = _environment()


@lru_cache(maxsize=256)
def compile_template(source: str) -> jinja2.Template:
    """Compile a template source; raises TemplateError with the line of a syntax error."""
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from exc
    except RecursionError as exc:
        raise TemplateError("nested too deeply") from exc


def _builtin_names(event_name: str, role: RecipientRole) -> list[str]:
    return [f"{event_name}.{role.value}.j2", f"{event_name}.j2", "default.j2"]


def builtin_template(event_name: str, role: RecipientRole) -> jinja2.Template:
    return _ENV.select_template(_builtin_names(event_name, role))


def builtin_source(event_name: str, role: RecipientRole) -> str:
    """The source text of the built-in template used for an event and role."""
    name = str(builtin_template(event_name, role).name)
    assert _ENV.loader is not None
    return _ENV.loader.get_source(_ENV, name)[0]


def event_label(event_type: str) -> str:
    """The Chinese name of an event, from its payload class: ``交办`` for opinion.assigned."""
    cls = EVENT_TYPES.get(event_type)
    doc = (cls.__doc__ or "") if cls else ""
    return doc.split(" — ")[0].strip() if " — " in doc else event_type


def render(template: jinja2.Template, event: CloudEvent, role: RecipientRole) -> Rendered:
    """Render for one recipient role; personal data in the payload is masked first."""
    context: dict[str, Any] = {
        "event": event.model_dump(mode="json", exclude={"data"}),
        "data": mask_strings(event.data),
        "role": role.value,
        "greeting": GREETINGS[role],
        "label": event_label(event.type),
    }
    try:
        text = template.render(context)
    # Not only jinja2's errors: a template can divide by zero or feed a filter bad data.
    except Exception as exc:
        raise TemplateError(f"{template.name or 'override'}: {type(exc).__name__}: {exc}") from exc
    subject, _, body = text.strip().partition("\n")
    # One line, whatever the data holds: a stray CR would make an invalid e-mail header.
    return Rendered(subject=" ".join(subject.split()), text=body.strip())


# Chinese SMS providers cap each template variable (Aliyun: 35 characters).
SMS_PARAM_MAX = 35


def sms_params(event: CloudEvent, subject: str) -> dict[str, str]:
    """The parameters of an SMS template: the event's name and tracking number, the rendered
    subject line (masked, shortened), and the feedback link where the event has one."""
    data = event.data
    params = {
        "event": event_label(event.type),
        "tracking_no": str(data.get("tracking_no", "")),
        "summary": subject[:SMS_PARAM_MAX],
    }
    if "feedback_url" in data:
        params["link"] = str(data["feedback_url"])
    return params
