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
