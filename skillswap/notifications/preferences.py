"""Which channels a user wants each kind of notification on, besides the live stream.

Every notification reaches the user's open WebSocket connections and their stored list; email
and push follow the user's choice per kind (`channels_for`, asked by the senders). A kind the
user never chose for gets its defaults. Security mails (email verification, password reset)
are fixed: always mailed, never pushed, whatever is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from skillswap.errors import ValidationFailed
from skillswap.i18n import Message, lazy
from skillswap.models import NotificationPreference, User
from skillswap.models.notifications import NotificationKind

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.deps import Deps

Channel = Literal["email", "push"]
CHANNELS: tuple[Channel, ...] = ("email", "push")


@dataclass(frozen=True)
class Channels:
    """The channels one kind of notification goes out on."""

    email: bool
    push: bool

    def as_set(self) -> set[str]:
        return {channel for channel in CHANNELS if getattr(self, channel)}

    def as_dict(self) -> dict[str, bool]:
        return {"email": self.email, "push": self.push}


ON = Channels(email=True, push=True)
PUSH_ONLY = Channels(email=False, push=True)
MAIL_ONLY = Channels(email=True, push=False)

# What a user gets before choosing: what the other side did to an order and new chat messages
# (a digest mail while offline) on both; a transition without a kind of its own on push only.
DEFAULTS: Mapping[NotificationKind, Channels] = {
    NotificationKind.ORDER_UPDATED: PUSH_ONLY,
    NotificationKind.EMAIL_VERIFICATION: MAIL_ONLY,
    NotificationKind.PASSWORD_RESET: MAIL_ONLY,
}
# Kinds whose channels nobody may change: the mails that let someone into their account.
FIXED: Mapping[NotificationKind, Channels] = {
    NotificationKind.EMAIL_VERIFICATION: MAIL_ONLY,
    NotificationKind.PASSWORD_RESET: MAIL_ONLY,
}
FIXED_CHANNEL = lazy("Security mails cannot be turned off or pushed.")

Preferences = dict[NotificationKind, Channels]
# A choice as asked for: per kind, the channels given (PATCH may leave some out).
Choices = Mapping[NotificationKind, Mapping[Channel, bool]]

_preferences: Table = NotificationPreference.__table__  # type: ignore[assignment]


def default_channels(kind: NotificationKind) -> Channels:
    """The channels of `kind` for a user who never chose."""
    return DEFAULTS.get(kind, ON)


def _merged(rows: Mapping[str, Channels]) -> Preferences:
    return {
        kind: FIXED.get(kind) or rows.get(kind.value) or default_channels(kind)
        for kind in NotificationKind
    }


async def _stored(session: AsyncSession, user_id: int) -> dict[str, Channels]:
    rows = await session.execute(
        select(
            NotificationPreference.kind, NotificationPreference.email, NotificationPreference.push
        ).where(NotificationPreference.user_id == user_id)
    )
    return {kind: Channels(email=bool(email), push=bool(push)) for kind, email, push in rows}


async def channels_for(session: AsyncSession, user_id: int, kind: NotificationKind) -> set[str]:
    """The channels (`email`, `push`) the user wants `kind` on: what a sender asks first."""
    fixed = FIXED.get(kind)
    if fixed is not None:
        return fixed.as_set()
    row = (
        await session.execute(
            select(NotificationPreference.email, NotificationPreference.push).where(
                NotificationPreference.user_id == user_id, NotificationPreference.kind == kind
            )
        )
    ).first()
    if row is None:
        return default_channels(kind).as_set()
    return Channels(email=bool(row.email), push=bool(row.push)).as_set()


async def get_preferences(deps: Deps, *, actor: User) -> Preferences:
    """The actor's channels for every kind (their choices over the defaults)."""
    async with deps.db.read() as session:
        return _merged(await _stored(session, actor.id))


def _refuse_fixed(choices: Choices, *, prefix: str) -> None:
    errors: dict[str, list[Message]] = {}
    for kind, asked in choices.items():
        fixed = FIXED.get(kind)
        if fixed is None:
            continue
        for channel, value in asked.items():
            if value != getattr(fixed, channel):
                errors[f"{prefix}{kind.value}.{channel}"] = [FIXED_CHANNEL]
    if errors:
        raise ValidationFailed(errors=errors)


async def update_preferences(
    deps: Deps, *, actor: User, choices: Choices, replace: bool, error_prefix: str = ""
) -> Preferences:
    """Change the actor's channels for the kinds in `choices`.

    `replace` (PUT): the choices are the whole document; every kind left out returns to its
    defaults. Otherwise (PATCH) only the channels given change. Changing a fixed kind's
    channel is a 400 naming it (`error_prefix` + kind + channel); sending its fixed value back
    is accepted, so a client may send back what it read.
    """
    _refuse_fixed(choices, prefix=error_prefix)
    insert = postgresql.insert if deps.db.on_driver else sqlite.insert
    async with deps.db.uow() as uow:
        session = uow.session
        if replace:
            await session.execute(
                delete(NotificationPreference).where(NotificationPreference.user_id == actor.id)
            )
            before: dict[str, Channels] = {}
        else:
            before = await _stored(session, actor.id)
        for kind, asked in choices.items():
            if kind in FIXED or not asked:
                continue
            current = before.get(kind.value) or default_channels(kind)
            values: dict[str, bool] = {**current.as_dict(), **{str(c): v for c, v in asked.items()}}
            statement = insert(_preferences).values(user_id=actor.id, kind=kind.value, **values)
            # A concurrent change of the same kind: each sets only the channels it was given.
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["user_id", "kind"],
                    set_={channel: statement.excluded[channel] for channel in asked},
                )
            )
        stored = await _stored(session, actor.id)
        await uow.commit()
    return _merged(stored)
