"""Listing use cases: create, change, pause/reactivate and delete a skill; read one skill.

Only a skill's owner changes it (others get 403, unknown or deleted skills 404). A skill is
never removed from the database, because orders and reviews refer to it: deleting marks it
`deleted`, or, while it has open orders, pauses it instead so those orders can finish.
A skill an administrator hid stays hidden whatever its owner does (409 `skill_hidden` to a
status change; its text may still be edited) until an administrator restores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from skillswap.db import UnitOfWork
from skillswap.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models import Category, Skill, User
from skillswap.models.skills import SkillStatus
from skillswap.skills import search
from skillswap.skills.queries import AnyRow, ImageTuple, fetch_skill
from skillswap.skills.text import normalise_tags

if TYPE_CHECKING:
    from skillswap.deps import Deps


TEXT_FIELDS = ("title_en", "title_ar", "description_en", "description_ar", "tags")
EDITABLE_FIELDS = (
    *TEXT_FIELDS,
    "category_id",
    "price_points",
    "level",
    "languages",
    "delivery_days",
    "lesson_minutes",  # changing it changes new bookings only: a lesson keeps its own length
)

SkillRecord = tuple[AnyRow, list[ImageTuple]]


@dataclass(frozen=True)
class DeleteOutcome:
    """What deleting did: `deleted`, or `paused` because open orders still need the skill (or
    `hidden`: a hidden skill with open orders stays hidden, as an administrator left it)."""

    status: Literal[SkillStatus.DELETED, SkillStatus.PAUSED, SkillStatus.HIDDEN]
    open_orders: bool


def _not_found() -> NotFound:
    return NotFound(lazy("This skill does not exist."), code="skill_not_found")


async def load_skill_for_owner(
    uow: UnitOfWork, *, actor: User, skill_id: int, lock: bool = False
) -> Skill:
    """The actor's own skill (404 if unknown or deleted, 403 if someone else's)."""
    statement = select(Skill).where(Skill.id == skill_id)
    if lock:
        statement = statement.with_for_update()
    skill = await uow.session.scalar(statement)
    if skill is None or skill.status == SkillStatus.DELETED:
        raise _not_found()
    if skill.owner_id != actor.id:
        raise PermissionDenied(lazy("Only the owner can change this skill."), code="not_owner")
    return skill


def _hidden(skill: Skill) -> Conflict:
    return Conflict(
        lazy(
            "An administrator hid this skill: only an administrator can list it again. "
            "You may still edit its text."
        ),
        code="skill_hidden",
        extra={"moderation_note": skill.moderation_note},
    )


async def _check_category(uow: UnitOfWork, category_id: int) -> None:
    category = await uow.session.get(Category, category_id)
    parent_active = True
    if category is not None and category.parent_id is not None:
        parent = await uow.session.get(Category, category.parent_id)
        parent_active = parent is not None and parent.is_active
    if category is None or not category.is_active or not parent_active:
        raise ValidationFailed(
            errors={"category_id": [lazy("This category does not exist or is closed.")]}
        )


def _check_languages_complete(values: dict[str, Any]) -> None:
    complete = any(
        values.get(f"title_{lang}") and values.get(f"description_{lang}") for lang in ("en", "ar")
    )
    if not complete:
        message = lazy("Give a title and a description in English or in Arabic (or both).")
        raise ValidationFailed(errors={"title_en": [message], "title_ar": [message]})


def _default_languages(values: dict[str, Any]) -> list[str]:
    return [lang for lang in ("en", "ar") if values.get(f"title_{lang}")]


async def _write_search_document(deps: Deps, uow: UnitOfWork, skill: Skill) -> None:
    document = search.SearchDocument.of(
        title_en=skill.title_en,
        title_ar=skill.title_ar,
        tags=skill.tags,
        description_en=skill.description_en,
        description_ar=skill.description_ar,
    )
    if deps.db.is_sqlite:
        await uow.session.flush()
        await search.store_fts_documents(uow.session, {skill.id: document})
    else:
        # Written by the same INSERT/UPDATE as the skill: one row version, not two.
        skill.search_vector = search.vector_of(document)


async def create_skill(deps: Deps, *, actor: User, fields: dict[str, Any]) -> SkillRecord:
    """List a new skill of the actor's; it is active at once."""
    values = {name: fields[name] for name in EDITABLE_FIELDS if name in fields}
    values["tags"] = normalise_tags(values.get("tags") or [])
    values["languages"] = values.get("languages") or _default_languages(values)
    _check_languages_complete(values)
    async with deps.db.uow() as uow:
        await _check_category(uow, values["category_id"])
        now = deps.clock()
        skill = Skill(
            owner_id=actor.id,
            status=SkillStatus.ACTIVE,
            rating_sum=0,
            rating_count=0,
            orders_completed=0,
            created_at=now,
            updated_at=now,
            **values,
        )
        uow.session.add(skill)
        await _write_search_document(deps, uow, skill)
        await uow.session.flush()
        record = await fetch_skill(uow.session, skill.id)
        await uow.commit()
    assert record is not None
    return record


async def update_skill(
    deps: Deps, *, actor: User, skill_id: int, changes: dict[str, Any], replace: bool = False
) -> SkillRecord:
    """Change the actor's skill; `replace` (PUT) resets the optional text fields not given.

    `status` may move between `active` and `paused` (pause and reactivate).
    """
    async with deps.db.uow() as uow:
        skill = await load_skill_for_owner(uow, actor=actor, skill_id=skill_id, lock=True)
        values = {name: getattr(skill, name) for name in EDITABLE_FIELDS}
        if replace:
            values.update(
                {"title_en": "", "title_ar": "", "description_en": "", "description_ar": ""}
            )
            values["tags"] = []
            values["languages"] = []
        values.update({name: changes[name] for name in EDITABLE_FIELDS if name in changes})
        values["tags"] = normalise_tags(values["tags"] or [])
        values["languages"] = values["languages"] or _default_languages(values)
        _check_languages_complete(values)
        if values["category_id"] != skill.category_id:
            await _check_category(uow, values["category_id"])
        text_changed = any(values[name] != getattr(skill, name) for name in TEXT_FIELDS)
        changed = any(values[name] != getattr(skill, name) for name in EDITABLE_FIELDS)
        for name, value in values.items():
            setattr(skill, name, value)
        status = changes.get("status")
        if status is not None and skill.status == SkillStatus.HIDDEN:
            raise _hidden(skill)
        if status is not None and status != skill.status:
            skill.status = status
            changed = True
        if changed:
            skill.updated_at = deps.clock()
        if text_changed:
            await _write_search_document(deps, uow, skill)
        await uow.session.flush()
        record = await fetch_skill(uow.session, skill.id)
        await uow.commit()
    assert record is not None
    return record


async def delete_skill(deps: Deps, *, actor: User, skill_id: int) -> DeleteOutcome:
    """Delete the actor's skill, or pause it if it still has open orders."""
    async with deps.db.uow() as uow:
        skill = await load_skill_for_owner(uow, actor=actor, skill_id=skill_id, lock=True)
        # Asked with the skill row locked (SELECT ... FOR UPDATE on PostgreSQL), so an order
        # placed concurrently must lock the same row (or re-check `status = 'active'`) to be seen.
        if await deps.open_orders.skill_has_open_orders(uow.session, skill.id):
            # A hidden skill stays hidden (pausing it would let its owner reactivate it).
            if skill.status not in (SkillStatus.PAUSED, SkillStatus.HIDDEN):
                skill.status = SkillStatus.PAUSED
                skill.updated_at = deps.clock()
            hidden = skill.status == SkillStatus.HIDDEN
            await uow.commit()
            return DeleteOutcome(
                status=SkillStatus.HIDDEN if hidden else SkillStatus.PAUSED, open_orders=True
            )
        now = deps.clock()
        skill.status = SkillStatus.DELETED
        skill.deleted_at = now
        skill.updated_at = now
        await uow.session.flush()
        await search.drop_document(
            uow.session, "sqlite" if deps.db.is_sqlite else "postgresql", skill.id
        )
        await uow.commit()
    return DeleteOutcome(status=SkillStatus.DELETED, open_orders=False)


async def get_skill(deps: Deps, *, skill_id: int, viewer: User | None) -> SkillRecord:
    """One skill as a reader may see it: active listings for everyone, paused ones only for
    their owner (and administrators); deleted ones for no one."""
    async with deps.db.engine.connect() as conn:
        record = await fetch_skill(conn, skill_id)
    if record is None:
        raise _not_found()
    row = record[0]
    public = row.status == SkillStatus.ACTIVE and row.owner_is_active
    privileged = viewer is not None and (viewer.id == row.owner_id or viewer.is_admin)
    if row.status == SkillStatus.DELETED or not (public or privileged):
        raise _not_found()
    return record
