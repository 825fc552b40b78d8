"""Leaving: `/api/auth/account/delete/` (and `cancel/`), `/api/auth/account/export/` (and the
mailed `{token}/` download), and the administrators' `/api/admin/users/{id}/delete/` and
`reinstate/` (refused to non-administrators before their body is read)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from skillswap.accounts import deletion, exports
from skillswap.admin import leaving as admin_leaving
from skillswap.http.accounts import (
    DeleteAccountBody,
    DeletionScheduledOut,
    deletion_json,
    user_private,
)
from skillswap.http.admin_audit import AdminHandler
from skillswap.http.admin_users import AdminUserOut, admin_user_json
from skillswap.http.base import BaseHandler, limited, path_id, public, route
from skillswap.http.operations import operation
from skillswap.http.schemas import Out, UserPrivate
from skillswap.http.validation import Body


class ExportOut(Out):
    """A copy of one's data asked for: it is mailed once built."""

    id: int
    status: str = Field(json_schema_extra={"enum": ["building", "ready", "used", "expired"]})
    created_at: datetime
    expires_at: datetime | None = Field(description="Until when the mailed link works")


class ReasonBody(Body):
    reason: str = Field(min_length=1, max_length=2000)


class DeleteAccountHandler(BaseHandler):
    @operation(
        "deleteAccount",
        tag="Accounts",
        body=DeleteAccountBody,
        response=DeletionScheduledOut,
        status=202,
        problems=(403, 409, 429),
    )
    @limited("login")
    async def post(self) -> None:
        """Schedule the deletion of one's account (with the password, or a fresh Google sign-in)."""
        body = self.parse_body(DeleteAccountBody)
        user = await deletion.request_deletion(
            self.deps, actor=self.user, access=self.access_claims, password=body.password
        )
        self.send(deletion_json(user), status=202)


class CancelDeletionHandler(BaseHandler):
    @operation("cancelAccountDeletion", tag="Accounts", response=UserPrivate, problems=(409,))
    async def post(self) -> None:
        """Keep the account: call off its scheduled deletion."""
        user = await deletion.cancel_deletion(self.deps, actor=self.user)
        self.send(user_private(user))


class ExportHandler(BaseHandler):
    @operation("exportAccountData", tag="Accounts", response=ExportOut, status=202, problems=(429,))
    @limited("export")
    async def post(self) -> None:
        """Ask for a copy of one's data (one a day); a mail brings the download link."""
        export = await exports.request_export(self.deps, actor=self.user)
        self.send(exports.export_json(export), status=202)


class ExportDownloadHandler(BaseHandler):
    @operation(
        "downloadAccountData",
        tag="Accounts",
        response=None,
        file="application/zip",
        problems=(404,),
    )
    @public
    async def get(self, token: str) -> None:
        """The mailed copy of one's data, a zip (the link works once, for a day)."""
        found = await exports.download_export(self.deps, token=token)
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f'attachment; filename="{found.filename}"')
        self.write(found.data)


class AdminDeleteUserHandler(AdminHandler):
    @operation(
        "adminDeleteUser",
        tag="Admin",
        body=ReasonBody,
        response=AdminUserOut,
        status=202,
        problems=(403, 404, 409),
    )
    async def post(self, user_id: str) -> None:
        """Schedule a user's deletion, with the reason (reinstating is possible until it is due)."""
        body = self.parse_body(ReasonBody)
        user = await admin_leaving.delete_user(
            self.deps, actor=self.user, user_id=path_id(user_id), reason=body.reason
        )
        self.send(admin_user_json(user), status=202)


class AdminReinstateUserHandler(AdminHandler):
    @operation(
        "adminReinstateUser",
        tag="Admin",
        body=ReasonBody,
        response=AdminUserOut,
        problems=(403, 404, 409),
    )
    async def post(self, user_id: str) -> None:
        """Call off a user's scheduled deletion, with the reason (in the grace period only)."""
        body = self.parse_body(ReasonBody)
        user = await admin_leaving.reinstate_user(
            self.deps, actor=self.user, user_id=path_id(user_id), reason=body.reason
        )
        self.send(admin_user_json(user))


routes = [
    route("/api/auth/account/delete/", DeleteAccountHandler),
    route("/api/auth/account/delete/cancel/", CancelDeletionHandler),
    route("/api/auth/account/export/", ExportHandler),
    route(r"/api/auth/account/export/(?P<token>[A-Za-z0-9_-]{1,100})/", ExportDownloadHandler),
    route(r"/api/admin/users/(?P<user_id>\d+)/delete/", AdminDeleteUserHandler),
    route(r"/api/admin/users/(?P<user_id>\d+)/reinstate/", AdminReinstateUserHandler),
]
