"""Statuses and actions as the reader calls them (the services' own labels where they have them)."""

from __future__ import annotations

from skillswap.i18n import N_, Translator
from skillswap.orders.rules import ACTION_LABELS, STATUS_LABELS

PAYMENT_STATUS_LABELS = {
    "pending": N_("pending"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "expired": N_("expired"),
    "partially_refunded": N_("partially refunded"),
    "refunded": N_("refunded"),
}
RESOLUTION_LABELS = {
    "refund": N_("Refund the buyer"),
    "release": N_("Release to the seller"),
    "split": N_("Split"),
}

REPORT_TARGET_LABELS = {
    "skill": N_("skill"),
    "user": N_("user"),
    "review": N_("review"),
    "message": N_("chat message"),
}
REPORT_REASON_LABELS = {
    "spam": N_("spam"),
    "fraud": N_("fraud"),
    "abuse": N_("abuse"),
    "inappropriate": N_("inappropriate"),
    "copyright": N_("copyright"),
    "other": N_("other"),
}
REPORT_OUTCOME_LABELS = {
    "dismissed": N_("Dismiss: nothing wrong"),
    "warned": N_("Warned (outside the product)"),
    "skill_hidden": N_("Hide the skill"),
    "user_banned": N_("Ban the user"),
}
REPORT_STATUS_LABELS = {"open": N_("open"), "closed": N_("closed")}


class Labels:
    """Label lookups for templates, bound to one translator; unknown codes show as they are."""

    def __init__(self, translator: Translator) -> None:
        self._t = translator

    def order_status(self, code: str) -> str:
        label = STATUS_LABELS.get(code)
        return label.render(self._t) if label else code

    def order_action(self, code: str) -> str:
        label = ACTION_LABELS.get(code)
        return label.render(self._t) if label else code

    def payment_status(self, code: str) -> str:
        label = PAYMENT_STATUS_LABELS.get(code)
        return self._t.gettext(label) if label else code

    def resolution(self, code: str | None) -> str:
        if code is None:
            return "—"
        label = RESOLUTION_LABELS.get(code)
        return self._t.gettext(label) if label else code

    def report_target(self, code: str) -> str:
        return self._known(REPORT_TARGET_LABELS, code)

    def report_reason(self, code: str) -> str:
        return self._known(REPORT_REASON_LABELS, code)

    def report_outcome(self, code: str | None) -> str:
        return "—" if code is None else self._known(REPORT_OUTCOME_LABELS, code)

    def report_status(self, code: str) -> str:
        return self._known(REPORT_STATUS_LABELS, code)

    def _known(self, labels: dict[str, str], code: str) -> str:
        label = labels.get(code)
        return self._t.gettext(label) if label else code
