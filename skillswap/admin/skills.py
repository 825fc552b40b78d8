"""Administrators and listings: every skill whatever its status, and hiding or restoring one.

A hidden skill leaves browse and search at once (they show active skills only, and the listing
cache's version moves with the commit that wrote the skill) and takes no orders; its owner is
told why (`moderation_note`, shown to them on their skill) and may still edit its text, but only
an administrator puts it back (`active`). Orders already placed go on. Each change is one audit
row, "skill.hide" or "skill.restore", with the status and note before and after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, or_, select

from skillswap.admin import audit
from skillswap.admin.users import like_pattern
from skillswap.db import UnitOfWork
from skillswap.errors import Conflict, NotFound, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models import Skill, User
from skillswap.models.admin import AuditTarget
from skillswap.models.notifications import NotificationKind
from skillswap.models.skills import SkillStatus
from skillswap.notifications import services as notifications

if TYPE_CHECKING:
    from skillswap.deps import Deps

# What an administrator may set, and how a list may be ordered (the first is the default).
MODERATED_STATUSES = (SkillStatus.HIDDEN, SkillStatus.ACTIVE)
SKILL_SORTS: dict[str, Any] = {
    "newest": Skill.id.desc(),
    "oldest": Skill.id.asc(),
    "updated": Skill.updated_at.desc(),
    "title": Skill.title_en.asc(),
}


def skill_not_found() -> NotFound:
    return NotFound(lazy("This skill does not exist."), code="skill_not_found")


async def list_skills(
    deps: Deps,
    *,
    actor: User,
    search: str | None,
    status: str | None,
    offset: int,
    limit: int,
    sort: str | None,
    owner_id: int | None = None,
) -> tuple[int, list[tuple[Skill, User]]]:
    """Every skill (deleted ones too, when asked by status) with its owner, newest first:
    `search` in either title (any case), filtered by status and owner."""
    audit.require_admin(actor)
    conditions: list[ColumnElement[bool]] = []
    if search:
        pattern = like_pattern(search)
        conditions.append(
            or_(
                Skill.title_en.ilike(pattern, escape="\\"),
                Skill.title_ar.ilike(pattern, escape="\\"),
            )
        )
    if status is not None:
        conditions.append(Skill.status == status)
    if owner_id is not None:
        conditions.append(Skill.owner_id == owner_id)
    order = SKILL_SORTS[sort or "newest"]
    async with deps.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Skill).where(*conditions))
        rows = await session.execute(
            select(Skill, User)
            .join(User, User.id == Skill.owner_id)
            .where(*conditions)
            .order_by(order, Skill.id)
            .offset(offset)
            .limit(limit)
        )
        return int(count or 0), [(skill, owner) for skill, owner in rows.all()]


async def moderate_skill(
    deps: Deps, *, actor: User, skill_id: int, status: str, note: str
) -> Skill:
    """Hide a skill (`hidden`, with a note saying why) or put a hidden one back (`active`).

    Setting the status it already has changes nothing (no audit row, no notification).
    """
    audit.require_admin(actor)
    if status not in MODERATED_STATUSES:
        raise ValidationFailed(errors={"status": [lazy("Must be hidden or active.")]})
    if status == SkillStatus.HIDDEN and not note.strip():
        raise ValidationFailed(errors={"note": [lazy("Say why the skill is hidden.")]})
    async with deps.db.uow() as uow:
        skill = await uow.session.get(Skill, skill_id, with_for_update=not deps.db.is_sqlite)
        if skill is None:
            raise skill_not_found()
        await change_skill_status(deps, uow, actor=actor, skill=skill, status=status, note=note)
        await uow.commit()
    return skill


async def change_skill_status(
    deps: Deps, uow: UnitOfWork, *, actor: User, skill: Skill, status: str, note: str
) -> None:
    """Hide or restore `skill` in the caller's unit of work, with its notification and audit
    row (what `moderate_skill` and closing a report share)."""
    if skill.status == SkillStatus.DELETED:
        raise Conflict(
            lazy("This skill was deleted by its owner: there is nothing to moderate."),
            code="skill_deleted",
        )
    if skill.status == status:
        return
    if status == SkillStatus.ACTIVE and skill.status != SkillStatus.HIDDEN:
        # A paused skill is its owner's to reactivate, not an administrator's.
        raise Conflict(
            lazy("Only a hidden skill can be restored."),
            code="skill_not_hidden",
            extra={"skill_status": skill.status},
        )
    now = deps.clock()
    before = {"status": skill.status, "moderation_note": skill.moderation_note}
    hiding = status == SkillStatus.HIDDEN
    skill.status = status
    skill.moderation_note = note if hiding else ""
    skill.updated_at = now
    await uow.session.flush()
    await _tell_the_owner(deps, uow, skill, hiding=hiding, note=note)
    after = {"status": skill.status, "moderation_note": skill.moderation_note}
    await audit.record(
        uow.session,
        actor,
        "skill.hide" if hiding else "skill.restore",
        AuditTarget.SKILL,
        skill.id,
        before=before,
        after=after,
        reason=note,
        now=now,
    )


async def _tell_the_owner(
    deps: Deps, uow: UnitOfWork, skill: Skill, *, hiding: bool, note: str
) -> None:
    title = skill.title_en or skill.title_ar
    if hiding:
        kind = NotificationKind.SKILL_HIDDEN
        text = lazy(
            'An administrator hid your skill "{title}" from the marketplace: {note}',
            title=title,
            note=note,
        )
    else:
        kind = NotificationKind.SKILL_RESTORED
        text = lazy('Your skill "{title}" is listed again.', title=title)
    await notifications.notify(
        deps,
        uow,
        user_id=skill.owner_id,
        kind=kind,
        text=text,
        payload={"skill_id": skill.id, "status": skill.status, "note": skill.moderation_note},
    )
