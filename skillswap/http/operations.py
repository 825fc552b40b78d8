"""What each REST operation declares about itself for the OpenAPI document (`@operation`).

The name a client calls it by, its group, the body it takes, the model and status it answers
with, the other answers it may give, and the problems it may answer. The query arguments are
declared with `takes_query` and whether it needs a user with `public`; the document reads all
three from the method (skillswap.http.openapi) and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from skillswap.http.base import HandlerMethod

Tag = Literal[
    "Accounts", "Skills", "Orders", "Lessons", "Chat", "Reviews", "Points", "Notifications",
    "Admin", "Operations",
]  # fmt: skip

# Client-facing groups first, then administration, then the probes; the document lists them so.
TAGS: dict[Tag, str] = {
    "Accounts": "Sign-up, sessions, profile, emailed codes, Google sign-in, public profiles.",
    "Skills": "Listings: browse, search, create, images, categories, one person's skills.",
    "Orders": "Ordering a skill: points held in escrow, the order's actions and history.",
    "Lessons": "Lessons booked at a time: the teacher's availability, free slots, one's lessons.",
    "Chat": "Rooms and messages (also live on the WebSocket at /ws/).",
    "Reviews": "Reviews of an order's other participant; a user's and a skill's reviews.",
    "Points": "The wallet's balance and statement, and the packages for sale.",
    "Notifications": "The signed-in user's notifications (also live on the WebSocket).",
    "Admin": "Administrators only: categories and points packages.",
    "Operations": "Liveness and readiness probes.",
}


@dataclass(frozen=True)
class Operation:
    """One operation's declaration (see `operation`)."""

    operation_id: str
    tag: Tag
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    problems: tuple[int, ...] = ()
    also: Mapping[int, type[BaseModel] | None] = field(default_factory=dict)
    upload: str | None = None
    paged: bool = False
    file: str | None = None  # the success answer is a file of this media type, not JSON


def operation(
    operation_id: str,
    *,
    tag: Tag,
    response: type[BaseModel] | None = None,
    status: int = 200,
    body: type[BaseModel] | None = None,
    problems: tuple[int, ...] = (),
    also: Mapping[int, type[BaseModel] | None] | None = None,
    upload: str | None = None,
    paged: bool = False,
    file: str | None = None,
) -> Any:
    """Declare a handler method as the operation `operation_id` (a name a client would call).

    `response` answers with `status` (None: no body, e.g. a 204); `also` maps any other
    success status to its model (None: no body, e.g. a 302); `problems` are the statuses of
    the problem documents it may answer besides the ones its declaration implies (400 for a
    body or query, 401 unless public); `upload` names the multipart file field it reads;
    `paged` that it takes `page` and `page_size`; `file` the media type of a success answer
    that is a file (a download) instead of JSON.
    """
    declared = Operation(
        operation_id=operation_id,
        tag=tag,
        response=response,
        status=status,
        body=body,
        problems=tuple(problems),
        also=dict(also or {}),
        upload=upload,
        paged=paged,
        file=file,
    )

    def declare(method: HandlerMethod) -> HandlerMethod:
        method.operation = declared  # type: ignore[attr-defined]
        return method

    return declare


def declared_operation(method: Any) -> Operation | None:
    """The declaration of a handler method, if it has one."""
    found = getattr(method, "operation", None)
    return found if isinstance(found, Operation) else None
