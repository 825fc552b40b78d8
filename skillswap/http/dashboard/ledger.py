"""The ledger (/admin/ledger/): adjust a wallet, read a wallet's statement, see the last check."""

from __future__ import annotations

import re
import uuid

from skillswap.admin import adjustments
from skillswap.admin import ledger as admin_ledger
from skillswap.errors import ValidationFailed
from skillswap.http.base import route
from skillswap.http.dashboard.base import PAGE_SIZE, DashboardHandler
from skillswap.i18n import lazy

_SIGNED_WHOLE = re.compile(r"^[+-]?\d{1,12}$")


class LedgerHandler(DashboardHandler):
    nav = "ledger"

    async def show(self) -> None:
        """The adjustment form, the chosen wallet's statement and the last nightly check."""
        user_id = self.query_id("user")
        statement = None
        if user_id is not None:
            statement = await admin_ledger.wallet_statement(
                self.deps, actor=self.actor, user_id=user_id, offset=self.offset(), limit=PAGE_SIZE
            )
        self.render_page(
            "admin/ledger.html",
            statement=statement,
            check=await admin_ledger.last_ledger_check(self.deps, actor=self.actor),
            # One key per form shown: sending it twice (a double click, a reload) adjusts once.
            adjustment_key=uuid.uuid4().hex,
            user_id=user_id,
        )

    async def post(self) -> None:
        """Credit or debit a wallet by whole points, with the reason the audit trail keeps."""
        user_id = self.form_id("user_id")
        await self.act(
            self._adjust(user_id), done="adjusted", back=f"/admin/ledger/?user={user_id}"
        )

    async def _adjust(self, user_id: int) -> None:
        raw = (self.get_body_argument("amount", "") or "").strip()
        if not _SIGNED_WHOLE.match(raw):
            raise ValidationFailed(errors={"amount": [lazy("Must be a whole number.")]})
        await adjustments.adjust_wallet(
            self.deps,
            actor=self.actor,
            user_id=user_id,
            amount=int(raw),
            reason=(self.get_body_argument("reason", "") or "").strip(),
            idempotency_key=(self.get_body_argument("idempotency_key", "") or "")[:255] or None,
        )


routes = [route("/admin/ledger/", LedgerHandler)]
