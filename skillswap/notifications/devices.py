"""Push devices: the app installations a user's push notifications go to.

A device is its push token (an FCM registration token). Registering is idempotent on the
token, and a token belongs to the user who registered it last: an app that signs in as someone
else registers its token again, and the previous user stops receiving pushes on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from skillswap.api.encoding import iso
from skillswap.errors import NotFound
from skillswap.i18n import lazy
from skillswap.models import Device, User
from skillswap.models.delivery import DevicePlatform

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.db import Database
    from skillswap.deps import Deps


@dataclass(frozen=True)
class Registered:
    device: Device
    created: bool  # False: the token was already this user's


def device_view(device: Device) -> dict[str, Any]:
    """A device as its owner sees it."""
    return {
        "id": device.id,
        "token": device.token,
        "platform": device.platform,
        "created_at": iso(device.created_at),
    }


async def _by_token(session: AsyncSession, token: str) -> Device | None:
    found: Device | None = await session.scalar(
        select(Device).where(Device.token == token).with_for_update()
    )
    return found


async def register_device(
    deps: Deps, *, actor: User, token: str, platform: DevicePlatform
) -> Registered:
    """Register `token` for the actor: new, already theirs (refreshed), or taken over."""
    now = deps.clock()
    insert = postgresql.insert if deps.db.on_driver else sqlite.insert
    async with deps.db.uow() as uow:
        session = uow.session
        device = await _by_token(session, token)
        created = device is None or device.user_id != actor.id
        if device is None:
            # Two first registrations of one token at once: the second finds the first's row.
            await session.execute(
                insert(Device)
                .values(
                    user_id=actor.id,
                    token=token,
                    platform=platform.value,
                    created_at=now,
                    last_seen_at=now,
                )
                .on_conflict_do_nothing(index_elements=["token"])
            )
            device = await _by_token(session, token)
            assert device is not None
        elif device.user_id != actor.id:
            device.user_id = actor.id
            device.created_at = now
        device.platform = platform.value
        device.last_seen_at = now
        await uow.commit()
    return Registered(device, created)


async def list_devices(
    deps: Deps, *, actor: User, offset: int, limit: int
) -> tuple[int, list[Device]]:
    """The actor's devices, the latest registered first, with the total count."""
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(Device).where(Device.user_id == actor.id)
        )
        rows = await session.scalars(
            select(Device)
            .where(Device.user_id == actor.id)
            .order_by(Device.created_at.desc(), Device.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return int(count or 0), list(rows)


def _not_found() -> NotFound:
    return NotFound(lazy("No such device."), code="device_not_found")


async def get_device(deps: Deps, *, actor: User, device_id: int) -> Device:
    """One of the actor's devices (anyone else's is not found)."""
    async with deps.db.read() as session:
        device: Device | None = await session.scalar(
            select(Device).where(Device.id == device_id, Device.user_id == actor.id)
        )
    if device is None:
        raise _not_found()
    return device


async def remove_device(deps: Deps, *, actor: User, device_id: int) -> None:
    """Stop pushing to one of the actor's devices (anyone else's is not found)."""
    async with deps.db.uow() as uow:
        result = await uow.session.execute(
            delete(Device).where(Device.id == device_id, Device.user_id == actor.id)
        )
        await uow.commit()
    if not getattr(result, "rowcount", 0):
        raise _not_found()


async def devices_of(session: AsyncSession, user_id: int) -> list[Device]:
    """Every device of a user, oldest first (where a push goes)."""
    rows = await session.scalars(
        select(Device).where(Device.user_id == user_id).order_by(Device.id)
    )
    return list(rows)


async def forget_tokens(db: Database, tokens: Iterable[str]) -> int:
    """Remove the devices of tokens the push service says are dead; how many went."""
    dead = sorted(set(tokens))
    if not dead:
        return 0
    async with db.uow() as uow:
        result = await uow.session.execute(delete(Device).where(Device.token.in_(dead)))
        await uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)
