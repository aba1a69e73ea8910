"""A limit and a cursor on every list: lists are read in ``_id`` order from the id after
``after``, and a full page names the cursor of the next one in the ``X-Next-After`` header.
Lists people read newest first (ULID ids) go the other way, from the id before ``before``."""

from collections.abc import Sequence
from typing import Annotated

from fastapi import Query, Response

NEXT_HEADER = "X-Next-After"

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items")]
After = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=100,
        description=f"Cursor: the {NEXT_HEADER} header of the previous page",
    ),
]


Before = Annotated[
    str | None,
    Query(min_length=1, max_length=100, description="Cursor: the last id of the previous page"),
]


def after_filter(after: str | None) -> dict[str, object]:
    return {} if after is None else {"_id": {"$gt": after}}


def before_filter(before: str | None) -> dict[str, object]:
    return {} if before is None else {"_id": {"$lt": before}}


def link_next(response: Response, ids: Sequence[str], limit: int) -> None:
    """Name the next page's cursor when this page is full (more may follow)."""
    if len(ids) == limit:
        response.headers[NEXT_HEADER] = ids[-1]
