"""Users and their listings (/admin/users/, /admin/skills/): find them, ban and unban, the trust
badge and admin rights, delete an account or reinstate it in its grace period, hide a skill with
a note or put it back (the moderation and leaving services)."""

from __future__ import annotations

from typing import Any

from skillswap.admin import leaving as admin_leaving
from skillswap.admin import skills as admin_skills
from skillswap.admin import users as admin_users
from skillswap.http.base import path_id, route
from skillswap.http.dashboard.base import PAGE_SIZE, DashboardHandler
from skillswap.http.dashboard.export import stream_csv
from skillswap.models.skills import SkillStatus

USER_STATUSES = admin_users.USER_STATUSES
# What each user form asks the service to change, and what the page then says.
USER_CHANGES: dict[str, tuple[str, bool, str]] = {
    "ban": ("is_active", False, "banned"),
    "unban": ("is_active", True, "unbanned"),
    "verify": ("is_verified", True, "saved"),
    "unverify": ("is_verified", False, "saved"),
    "make_admin": ("is_admin", True, "saved"),
    "revoke_admin": ("is_admin", False, "saved"),
}
# The user page's leaving forms: the service each calls, and what the page then says.
LEAVING_ACTIONS: dict[str, tuple[Any, str]] = {
    "delete": (admin_leaving.delete_user, "deletion_scheduled"),
    "reinstate": (admin_leaving.reinstate_user, "reinstated"),
}


def _choice(value: str | None, allowed: Any) -> str | None:
    return value if value in allowed else None


class UsersHandler(DashboardHandler):
    nav = "users"

    def _filters(self) -> dict[str, Any]:
        verified = self.query_text("is_verified")
        return {
            "search": (self.query_text("search") or "")[:100] or None,
            "status": _choice(self.query_text("status"), USER_STATUSES),
            "is_verified": {"true": True, "false": False}.get(verified or ""),
            "sort": _choice(self.query_text("sort"), admin_users.USER_SORTS),
        }

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        return await admin_users.list_users(
            self.deps, actor=self.actor, offset=offset, limit=limit, **self._filters()
        )

    async def show(self) -> None:
        """Users found by email, username or name, by status and badge, in the chosen order."""
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self,
                filename="users.csv",
                header=[
                    "id",
                    "email",
                    "username",
                    "display_name",
                    "is_active",
                    "is_verified",
                    "is_admin",
                    "banned_at",
                    "created_at",
                ],
                fetch=self._page,
                row=lambda u: [
                    u.id,
                    u.email,
                    u.username,
                    u.display_name,
                    u.is_active,
                    u.is_verified,
                    u.is_admin,
                    u.banned_at,
                    u.created_at,
                ],
            )
            return
        count, rows = await self._page(self.offset(), PAGE_SIZE)
        self.render_page(
            "admin/users.html",
            count=count,
            users=rows,
            filters=self._filters(),
            sorts=list(admin_users.USER_SORTS),
        )

    async def post(self) -> None:
        """Ban or unban (with a reason), give or take the trust badge or admin rights."""
        await change_user(self, self.form_id("user_id"))


async def change_user(handler: DashboardHandler, user_id: int) -> None:
    """The user forms' one action (`update_user`), from the list or from the user's page."""
    change = USER_CHANGES.get(handler.get_body_argument("action", "") or "")
    if change is None:
        handler.set_status(400)
        await handler.show()
        return
    field, value, done = change
    await handler.act(
        admin_users.update_user(
            handler.deps,
            actor=handler.actor,
            user_id=user_id,
            reason=(handler.get_body_argument("reason", "") or "").strip(),
            **{field: value},
        ),
        done=done,
    )


class UserHandler(DashboardHandler):
    nav = "users"

    def user_id(self) -> int:
        return path_id(self.path_args[0])

    async def show(self) -> None:
        """One user whole: profile, badge, wallet, their orders, payments and the reports
        against them, with the forms that change them."""
        detail = await admin_users.user_detail(self.deps, actor=self.actor, user_id=self.user_id())
        # A deletion refused for open orders lists them beside the form that asked.
        refused = self.problem.extra.get("open_orders") if self.problem is not None else None
        self.render_page("admin/user.html", detail=detail, u=detail.user, open_orders=refused or [])

    async def post(self, *args: str) -> None:
        """Ban or unban, the badge, admin rights (the users list's forms, on this page), and
        deleting the account or reinstating it during its grace period, with a reason."""
        leaving = LEAVING_ACTIONS.get(self.get_body_argument("action", "") or "")
        if leaving is None:
            await change_user(self, self.user_id())
            return
        service, done = leaving
        await self.act(
            service(
                self.deps,
                actor=self.actor,
                user_id=self.user_id(),
                reason=(self.get_body_argument("reason", "") or "").strip(),
            ),
            done=done,
        )


class SkillsHandler(DashboardHandler):
    nav = "skills"

    def _filters(self) -> dict[str, Any]:
        return {
            "search": (self.query_text("search") or "")[:100] or None,
            "status": _choice(self.query_text("status"), set(SkillStatus)),
            "sort": _choice(self.query_text("sort"), admin_skills.SKILL_SORTS),
            "owner_id": self.query_id("owner"),
        }

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        return await admin_skills.list_skills(
            self.deps, actor=self.actor, offset=offset, limit=limit, **self._filters()
        )

    async def show(self) -> None:
        """Skills found by title, by status and owner, with their owners."""
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self,
                filename="skills.csv",
                header=[
                    "id",
                    "title_en",
                    "title_ar",
                    "status",
                    "price_points",
                    "owner_id",
                    "owner",
                    "moderation_note",
                    "created_at",
                ],
                fetch=self._page,
                row=lambda r: [
                    r[0].id,
                    r[0].title_en,
                    r[0].title_ar,
                    r[0].status,
                    r[0].price_points,
                    r[1].id,
                    r[1].username,
                    r[0].moderation_note,
                    r[0].created_at,
                ],
            )
            return
        count, rows = await self._page(self.offset(), PAGE_SIZE)
        self.render_page(
            "admin/skills.html",
            count=count,
            skills=rows,
            filters=self._filters(),
            statuses=list(SkillStatus),
            sorts=list(admin_skills.SKILL_SORTS),
        )

    async def post(self) -> None:
        """Hide a skill with a note saying why, or list a hidden one again."""
        hide = self.get_body_argument("action", "") == "hide"
        await self.act(
            admin_skills.moderate_skill(
                self.deps,
                actor=self.actor,
                skill_id=self.form_id("skill_id"),
                status=SkillStatus.HIDDEN if hide else SkillStatus.ACTIVE,
                note=(self.get_body_argument("note", "") or "").strip(),
            ),
            done="hidden" if hide else "restored",
        )


routes = [
    route("/admin/users/", UsersHandler),
    route(r"/admin/users/(\d+)/", UserHandler),
    route("/admin/skills/", SkillsHandler),
]
