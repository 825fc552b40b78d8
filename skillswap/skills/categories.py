"""Categories: the public two-level tree with live skill counts, and its administration.

Only administrators create, rename, reorder and deactivate categories. A deactivated category
(or one under a deactivated parent) disappears from the public tree and accepts no new skills;
skills already in it stay listed until their owners move them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from skillswap.admin import audit
from skillswap.db import UnitOfWork
from skillswap.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from skillswap.i18n import all_of, lazy
from skillswap.models import Category, User
from skillswap.models.admin import AuditTarget
from skillswap.models.skills import SkillStatus
from skillswap.skills.queries import AnyRow, categories, skills, users

if TYPE_CHECKING:
    from skillswap.deps import Deps

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# What an audit row keeps of a category (before and after a change).
AUDITED_FIELDS = ("slug", "name_en", "name_ar", "icon", "parent_id", "position", "is_active")


def _require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise PermissionDenied(
            lazy("Only administrators can manage categories."), code="admin_only"
        )


def _audited(category: Category) -> dict[str, Any]:
    return {name: getattr(category, name) for name in AUDITED_FIELDS}


def _not_found() -> NotFound:
    return NotFound(lazy("This category does not exist."), code="category_not_found")


def category_view(
    row: AnyRow | Category, *, locale: str, skill_count: int | None = None
) -> dict[str, Any]:
    """A category in the reader's language, with both names."""
    view: dict[str, Any] = {
        "id": row.id,
        "slug": row.slug,
        "name": row.name_ar if locale == "ar" else row.name_en,
        "name_en": row.name_en,
        "name_ar": row.name_ar,
        "icon": row.icon,
        "parent_id": row.parent_id,
        "position": row.position,
    }
    if skill_count is not None:
        view["skill_count"] = skill_count
    return view


async def category_tree(deps: Deps, *, locale: str) -> list[dict[str, Any]]:
    """Active top-level categories in order, each with its active children and the number of
    active skills (of active owners) it holds, children's included (what filtering by it finds)."""
    async with deps.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    categories.c.id,
                    categories.c.slug,
                    categories.c.name_en,
                    categories.c.name_ar,
                    categories.c.icon,
                    categories.c.parent_id,
                    categories.c.position,
                )
                .where(categories.c.is_active)
                .order_by(categories.c.position, categories.c.id)
            )
        ).all()
        counts: dict[int, int] = dict(
            (
                await conn.execute(
                    select(skills.c.category_id, func.count())
                    .select_from(skills.join(users, users.c.id == skills.c.owner_id))
                    .where(skills.c.status == SkillStatus.ACTIVE, users.c.is_active)
                    .group_by(skills.c.category_id)
                )
            ).all()
        )
    children: dict[int, list[AnyRow]] = defaultdict(list)
    for row in rows:
        if row.parent_id is not None:
            children[row.parent_id].append(row)
    tree: list[dict[str, Any]] = []
    for row in rows:
        if row.parent_id is not None:
            continue
        kids = [
            category_view(child, locale=locale, skill_count=counts.get(child.id, 0))
            for child in children[row.id]
        ]
        total = counts.get(row.id, 0) + sum(kid["skill_count"] for kid in kids)
        view = category_view(row, locale=locale, skill_count=total)
        view["children"] = kids
        tree.append(view)
    return tree


async def admin_list_categories(deps: Deps, *, actor: User, locale: str) -> list[dict[str, Any]]:
    """Every category, active or not, flat, in tree order (administrators only)."""
    _require_admin(actor)
    async with deps.db.read() as session:
        found = list(
            (await session.scalars(select(Category).order_by(Category.position, Category.id))).all()
        )
    return [{**category_view(c, locale=locale), "is_active": c.is_active} for c in found]


async def _check_parent(uow: UnitOfWork, parent_id: int | None, *, moving: Category | None) -> None:
    if parent_id is None:
        return
    parent = await uow.session.get(Category, parent_id)
    if parent is None:
        raise ValidationFailed(errors={"parent_id": [lazy("This category does not exist.")]})
    if parent.parent_id is not None or (moving is not None and parent.id == moving.id):
        raise ValidationFailed(
            errors={"parent_id": [lazy("Categories have two levels: choose a top-level parent.")]}
        )
    if moving is not None:
        has_children = await uow.session.scalar(
            select(func.count()).select_from(Category).where(Category.parent_id == moving.id)
        )
        if has_children:
            raise ValidationFailed(
                errors={"parent_id": [lazy("A category with subcategories cannot become one.")]}
            )


def _check_slug(slug: str) -> None:
    if not SLUG_RE.match(slug):
        raise ValidationFailed(
            errors={"slug": [lazy("Use lower-case letters, digits and single hyphens.")]}
        )


def _slug_taken() -> Conflict:
    message = lazy("Another category has this slug.")
    return Conflict(message, code="slug_taken", errors={"slug": [message]})


async def create_category(
    deps: Deps, *, actor: User, fields: dict[str, Any], locale: str
) -> dict[str, Any]:
    """Add a category (at the end of its level unless a position is given)."""
    _require_admin(actor)
    _check_slug(fields["slug"])
    async with deps.db.uow() as uow:
        await _check_parent(uow, fields.get("parent_id"), moving=None)
        position = fields.get("position")
        if position is None:
            last = await uow.session.scalar(
                select(func.max(Category.position)).where(
                    Category.parent_id.is_(None)
                    if fields.get("parent_id") is None
                    else Category.parent_id == fields["parent_id"]
                )
            )
            position = (last or 0) + 1
        now = deps.clock()
        category = Category(
            slug=fields["slug"],
            name_en=fields["name_en"],
            name_ar=fields["name_ar"],
            icon=fields.get("icon") or "",
            parent_id=fields.get("parent_id"),
            position=position,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(category)
        await _flush(uow)
        await audit.record(
            uow.session,
            actor,
            "category.create",
            AuditTarget.CATEGORY,
            category.id,
            after=_audited(category),
            now=now,
        )
        await uow.commit()
    return {**category_view(category, locale=locale), "is_active": category.is_active}


async def _flush(uow: UnitOfWork) -> None:
    """Flush a created or changed category; a duplicate slug is a clear 409."""
    try:
        await uow.session.flush()
    except IntegrityError:
        raise _slug_taken() from None


async def update_category(
    deps: Deps, *, actor: User, category_id: int, changes: dict[str, Any], locale: str
) -> dict[str, Any]:
    """Rename, re-icon, move, reposition, deactivate or reactivate a category."""
    _require_admin(actor)
    if "slug" in changes:
        _check_slug(changes["slug"])
    async with deps.db.uow() as uow:
        category = await uow.session.get(Category, category_id, with_for_update=True)
        if category is None:
            raise _not_found()
        if "parent_id" in changes and changes["parent_id"] != category.parent_id:
            await _check_parent(uow, changes["parent_id"], moving=category)
        before = _audited(category)
        for name in ("slug", "name_en", "name_ar", "icon", "position", "is_active", "parent_id"):
            if name in changes:
                setattr(category, name, changes[name] if name != "icon" else changes[name] or "")
        now = deps.clock()
        category.updated_at = now
        await _flush(uow)
        was, now_is = audit.changed(before, _audited(category))
        # Deactivating is the DELETE of the API (categories are never removed).
        action = "category.delete" if now_is == {"is_active": False} else "category.update"
        await audit.record(
            uow.session,
            actor,
            action,
            AuditTarget.CATEGORY,
            category.id,
            before=was,
            after=now_is,
            now=now,
        )
        await uow.commit()
    return {**category_view(category, locale=locale), "is_active": category.is_active}


async def reorder_categories(
    deps: Deps, *, actor: User, ordered_ids: list[int], locale: str
) -> list[dict[str, Any]]:
    """Put sibling categories in the given order (positions 1, 2, 3, ...)."""
    _require_admin(actor)
    if len(set(ordered_ids)) != len(ordered_ids):
        raise ValidationFailed(errors={"ids": [lazy("Each category may appear only once.")]})
    async with deps.db.uow() as uow:
        found = {
            c.id: c
            for c in (
                await uow.session.scalars(
                    select(Category).where(Category.id.in_(ordered_ids)).with_for_update()
                )
            ).all()
        }
        missing = [i for i in ordered_ids if i not in found]
        if missing:
            raise ValidationFailed(
                errors={"ids": [lazy("Unknown categories: {ids}.", ids=all_of(missing))]}
            )
        if len({c.parent_id for c in found.values()}) > 1:
            raise ValidationFailed(
                errors={
                    "ids": [lazy("Only categories with the same parent can be reordered together.")]
                }
            )
        now = deps.clock()
        before = sorted(ordered_ids, key=lambda i: (found[i].position, i))
        for position, category_id in enumerate(ordered_ids, start=1):
            found[category_id].position = position
            found[category_id].updated_at = now
        # One action, one row: about the first category listed, naming the whole order.
        await audit.record(
            uow.session,
            actor,
            "category.reorder",
            AuditTarget.CATEGORY,
            ordered_ids[0],
            before={"ids": before},
            after={"ids": list(ordered_ids)},
            now=now,
        )
        await uow.commit()
    return [
        {**category_view(found[i], locale=locale), "is_active": found[i].is_active}
        for i in ordered_ids
    ]
