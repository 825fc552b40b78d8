"""Reports: any signed-in user reports a skill, a user, a review or a chat message; administrators
work through the queue and close each report with what they did.

A target is reportable only if the reporter can see it (a listed skill, an active user, a
published review or one of their own order's, a message of a room they are in); anything else is
404 exactly as if it did not exist, so reports reveal nothing. Reporting oneself (one's own skill,
review or message) is 409 `own_target`. One open report per reporter and target: reporting it
again answers the report that waits (the partial unique index decides under a race). A reporter
files at most REPORTS_PER_DAY reports in 24 hours (429 `too_many_reports`).

Closing is one unit of work: the report, the action its outcome names (hiding the skill, banning
the subject, through the same functions as the admin API) and their audit rows ("report.close"
plus the action's own) commit together. The reporter is never told who acted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.admin import audit
from skillswap.admin.skills import change_skill_status
from skillswap.admin.users import change_user
from skillswap.db import UnitOfWork
from skillswap.errors import Conflict, NotFound, TooManyRequests, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models import ChatMember, ChatMessage, Report, Review, Skill, User
from skillswap.models.admin import AuditTarget, ReportOutcome, ReportStatus, ReportTarget
from skillswap.models.skills import SkillStatus

if TYPE_CHECKING:
    from skillswap.deps import Deps

DAY = timedelta(hours=24)
SUMMARY_CHARS = 300  # of a message's or a review's text in the queue


@dataclass(frozen=True)
class FiledReport:
    report: Report
    created: bool  # False: the reporter's open report of this target, as it was


@dataclass(frozen=True)
class QueuedReport:
    """A report in the administrators' queue, with what it is about summarised."""

    report: Report
    target: dict[str, Any]  # e.g. {"title": ...} of a skill, {"text": ...} of a message


def report_not_found() -> NotFound:
    return NotFound(lazy("This report does not exist."), code="report_not_found")


def _target_not_found() -> NotFound:
    return NotFound(lazy("There is nothing to report here."), code="target_not_found")


async def file_report(
    deps: Deps,
    *,
    actor: User,
    target_type: str,
    target_id: int,
    reason: str,
    detail: str = "",
) -> FiledReport:
    """Report a target the actor can see (or answer their open report of it)."""
    now = deps.clock()
    async with deps.db.uow() as uow:
        session = uow.session
        subject = await _visible_subject(session, actor, target_type, target_id)
        existing = await _open_report(session, actor.id, target_type, target_id)
        if existing is not None:
            await uow.commit()  # nothing was written; committing keeps the row usable
            return FiledReport(existing, created=False)
        await _within_daily_limit(deps, session, actor, now=now)
        report = Report(
            reporter_id=actor.id,
            target_type=target_type,
            target_id=target_id,
            subject_user_id=subject,
            reason=reason,
            detail=detail,
            status=ReportStatus.OPEN,
            note="",
            created_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(report)
                await session.flush()
        except IntegrityError:
            # The same report filed at the same moment: the index kept one, answer it.
            raced = await _open_report(session, actor.id, target_type, target_id)
            if raced is None:
                raise
            await uow.commit()
            return FiledReport(raced, created=False)
        await uow.commit()
    return FiledReport(report, created=True)


async def _open_report(
    session: AsyncSession, reporter_id: int, target_type: str, target_id: int
) -> Report | None:
    return await session.scalar(
        select(Report).where(
            Report.reporter_id == reporter_id,
            Report.target_type == target_type,
            Report.target_id == target_id,
            Report.status == ReportStatus.OPEN,
        )
    )


async def _within_daily_limit(
    deps: Deps, session: AsyncSession, actor: User, *, now: datetime
) -> None:
    """429 `too_many_reports` (with Retry-After) past REPORTS_PER_DAY in the last 24 hours."""
    limit = deps.settings.reports_per_day
    since = now - DAY
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(Report.created_at)).where(
                Report.reporter_id == actor.id, Report.created_at > since
            )
        )
    ).one()
    if count < limit:
        return
    retry_after = max(1, math.ceil((oldest + DAY - now).total_seconds()))
    raise TooManyRequests(
        lazy("You have sent many reports today. Try again later."),
        code="too_many_reports",
        headers={"Retry-After": str(retry_after)},
        extra={"limit": limit},
    )


async def _visible_subject(
    session: AsyncSession, actor: User, target_type: str, target_id: int
) -> int:
    """The user a report of the target is about, if the actor can see the target (else 404)."""
    if target_type == ReportTarget.SKILL:
        skill = await session.get(Skill, target_id)
        if skill is None or skill.status == SkillStatus.DELETED:
            raise _target_not_found()
        owner_active = await session.scalar(select(User.is_active).where(User.id == skill.owner_id))
        listed = skill.status == SkillStatus.ACTIVE and owner_active
        if not (listed or skill.owner_id == actor.id or actor.is_admin):
            raise _target_not_found()
        subject = skill.owner_id
    elif target_type == ReportTarget.USER:
        user = await session.get(User, target_id)
        if user is None or not (user.is_active or actor.is_admin):
            raise _target_not_found()
        subject = user.id
    elif target_type == ReportTarget.REVIEW:
        review = await session.get(Review, target_id)
        parties = {review.reviewer_id, review.reviewee_id} if review is not None else set()
        if review is None or not (review.counted_at is not None or actor.id in parties):
            raise _target_not_found()
        subject = review.reviewer_id
    else:
        message = await session.get(ChatMessage, target_id)
        member = message is not None and await session.scalar(
            select(ChatMember.user_id).where(
                ChatMember.room_id == message.room_id, ChatMember.user_id == actor.id
            )
        )
        if message is None or not member:
            raise _target_not_found()
        subject = message.sender_id
    if subject == actor.id:
        raise Conflict(lazy("You cannot report yourself or what you wrote."), code="own_target")
    return subject


async def own_reports(
    deps: Deps, *, actor: User, offset: int, limit: int
) -> tuple[int, list[Report]]:
    """The reports `actor` filed, newest first: each one's status, never who handled it."""
    async with deps.db.read() as session:
        mine = Report.reporter_id == actor.id
        count = await session.scalar(select(func.count()).select_from(Report).where(mine))
        rows = await session.scalars(
            select(Report).where(mine).order_by(Report.id.desc()).offset(offset).limit(limit)
        )
        return int(count or 0), list(rows)


async def own_report(deps: Deps, *, actor: User, report_id: int) -> Report:
    """One report `actor` filed; anyone else's is 404, as if it did not exist."""
    async with deps.db.read() as session:
        report = await session.get(Report, report_id)
    if report is None or report.reporter_id != actor.id:
        raise report_not_found()
    return report


async def list_reports(
    deps: Deps,
    *,
    actor: User,
    status: str | None,
    target_type: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[QueuedReport]]:
    """The queue: open reports first, oldest first, each with its target summarised."""
    audit.require_admin(actor)
    conditions = []
    if status is not None:
        conditions.append(Report.status == status)
    if target_type is not None:
        conditions.append(Report.target_type == target_type)
    async with deps.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Report).where(*conditions))
        rows = list(
            await session.scalars(
                select(Report)
                .where(*conditions)
                # 'open' sorts after 'closed': descending puts the waiting ones first.
                .order_by(Report.status.desc(), Report.id)
                .offset(offset)
                .limit(limit)
            )
        )
        summaries = await _summaries(session, rows)
        queued = [QueuedReport(r, summaries.get((r.target_type, r.target_id), {})) for r in rows]
    return int(count or 0), queued


async def _summaries(
    session: AsyncSession, reports: list[Report]
) -> dict[tuple[str, int], dict[str, Any]]:
    """What each report is about, in a few words (absent if it is gone): one query per kind
    of target on the page, not one per report."""
    wanted: dict[str, set[int]] = {}
    for report in reports:
        wanted.setdefault(report.target_type, set()).add(report.target_id)
    found: dict[tuple[str, int], dict[str, Any]] = {}
    if ids := wanted.get(ReportTarget.SKILL):
        for skill in await session.scalars(select(Skill).where(Skill.id.in_(ids))):
            found[ReportTarget.SKILL, skill.id] = {
                "title": skill.title_en or skill.title_ar,
                "status": skill.status,
            }
    if ids := wanted.get(ReportTarget.USER):
        for user in await session.scalars(select(User).where(User.id.in_(ids))):
            found[ReportTarget.USER, user.id] = {
                "username": user.username,
                "is_active": user.is_active,
            }
    if ids := wanted.get(ReportTarget.REVIEW):
        for review in await session.scalars(select(Review).where(Review.id.in_(ids))):
            found[ReportTarget.REVIEW, review.id] = {
                "text": review.comment[:SUMMARY_CHARS],
                "rating": review.rating,
            }
    if ids := wanted.get(ReportTarget.MESSAGE):
        for message in await session.scalars(select(ChatMessage).where(ChatMessage.id.in_(ids))):
            found[ReportTarget.MESSAGE, message.id] = {
                "text": message.body[:SUMMARY_CHARS],
                "room": message.room_id,
            }
    return found


async def close_report(
    deps: Deps, *, actor: User, report_id: int, outcome: str, note: str
) -> Report:
    """Close a report with what was done: dismissed, warned, skill_hidden (skill reports only:
    the skill is hidden) or user_banned (the subject is banned), all in one unit of work."""
    audit.require_admin(actor)
    if outcome not in tuple(ReportOutcome):
        raise ValidationFailed(errors={"outcome": [lazy("Unknown outcome.")]})
    acts = outcome in (ReportOutcome.SKILL_HIDDEN, ReportOutcome.USER_BANNED)
    if acts and not note.strip():
        raise ValidationFailed(errors={"note": [lazy("Say why: the person concerned reads it.")]})
    now = deps.clock()
    async with deps.db.uow() as uow:
        session = uow.session
        report = await session.get(Report, report_id, with_for_update=not deps.db.is_sqlite)
        if report is None:
            raise report_not_found()
        if report.status == ReportStatus.CLOSED:
            raise Conflict(
                lazy("This report is already closed."),
                code="report_closed",
                extra={"outcome": report.outcome},
            )
        banned: int | None = None
        if outcome == ReportOutcome.SKILL_HIDDEN:
            await _hide_reported_skill(deps, uow, actor, report, note)
        elif outcome == ReportOutcome.USER_BANNED:
            banned = await _ban_subject(deps, uow, actor, report, note, now=now)
        report.status = ReportStatus.CLOSED
        report.outcome = outcome
        report.closed_by = actor.id
        report.closed_at = now
        report.note = note
        await session.flush()
        await audit.record(
            session,
            actor,
            "report.close",
            AuditTarget.REPORT,
            report.id,
            before={"status": ReportStatus.OPEN},
            after={"status": ReportStatus.CLOSED, "outcome": outcome},
            reason=note,
            now=now,
        )
        await uow.commit()
    if banned is not None:
        deps.signed_in.forget(banned)
    return report


async def _hide_reported_skill(
    deps: Deps, uow: UnitOfWork, actor: User, report: Report, note: str
) -> None:
    if report.target_type != ReportTarget.SKILL:
        raise ValidationFailed(
            errors={"outcome": [lazy("Only a report of a skill can hide a skill.")]}
        )
    skill = await uow.session.get(Skill, report.target_id, with_for_update=not deps.db.is_sqlite)
    if skill is None:
        raise _target_not_found()
    await change_skill_status(
        deps, uow, actor=actor, skill=skill, status=SkillStatus.HIDDEN, note=note
    )


async def _ban_subject(
    deps: Deps, uow: UnitOfWork, actor: User, report: Report, note: str, *, now: datetime
) -> int:
    subject = (
        await uow.session.get(User, report.subject_user_id, with_for_update=not deps.db.is_sqlite)
        if report.subject_user_id is not None
        else None
    )
    if subject is None:
        raise _target_not_found()
    await change_user(deps, uow, actor=actor, user=subject, is_active=False, reason=note, now=now)
    return subject.id
