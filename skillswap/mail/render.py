"""Mails from templates: a text and an HTML part in the recipient's language.

Each kind has `templates/{kind}.txt` (which also sets the subject) and `templates/{kind}.html`
(on `layout.html`, with `dir="rtl"` for Arabic). Templates translate with `_("...", name=value)`
and `ngettext(singular, plural, n)`, through the same gettext catalogs as the API, so their
strings are extracted with the rest (babel.cfg) and plurals follow each language's rules.
Links are absolute, on PUBLIC_URL: the pages of the web app that client serves there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from skillswap.i18n import N_, Translator
from skillswap.mail import OutgoingEmail
from skillswap.models.notifications import NotificationKind
from skillswap.models.orders import OrderAction, Resolution
from skillswap.settings import Settings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class MailKind(StrEnum):
    """Every mail the service sends (security mails are the emailed codes' purposes)."""

    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"
    ORDER_PLACED = "order_placed"  # to the seller
    ORDER_TRANSITIONED = "order_transitioned"  # to the side that did not act
    DISPUTE_RESOLVED = "dispute_resolved"  # to both sides
    REVIEW_RECEIVED = "review_received"  # to the one reviewed
    CHAT_DIGEST = "chat_digest"  # to a member who left a room's messages unread while away
    LEDGER_ALERT = "ledger_alert"  # to every administrator, when the ledger check fails
    ACCOUNT_SUSPENDED = "account_suspended"  # to a user an administrator banned, with the reason
    SKILL_MODERATED = "skill_moderated"  # to a skill's owner an administrator hid or restored
    POINTS_ADJUSTED = "points_adjusted"  # to a wallet's owner, when an administrator adjusted it
    DELETION_SCHEDULED = "deletion_scheduled"  # to a user whose account deletion was scheduled
    DATA_EXPORT_READY = "data_export_ready"  # to a user whose copy of their data is ready
    LESSON_REMINDER = "lesson_reminder"  # to each participant, some time before a lesson


# What each order transition tells the other side: the notification's own sentence.
_TRANSITION_HEADLINES: dict[str, str] = {
    OrderAction.ACCEPT: N_("Order #{order} was accepted."),
    OrderAction.REJECT: N_("Order #{order} was rejected."),
    OrderAction.DELIVER: N_("Order #{order} was delivered. Review the work."),
    OrderAction.COMPLETE: N_("Order #{order} was completed."),
    OrderAction.CANCEL: N_("Order #{order} was cancelled."),
    OrderAction.REQUEST_CHANGES: N_("Changes were requested on order #{order}."),
    OrderAction.DISPUTE: N_("Order #{order} is disputed. An administrator will review it."),
    OrderAction.RESOLVE: N_("The dispute on order #{order} was resolved."),
    OrderAction.EXPIRE: N_("Order #{order} expired."),
    OrderAction.PAUSE: N_("Order #{order} is paused while an administrator reviews it."),
    OrderAction.RESUME: N_("Order #{order} was resumed."),
}
_OTHER_TRANSITION = N_("Order #{order} was updated.")

# What an administrator did to a skill, by the kind of the owner's notification.
_MODERATION_HEADLINES: dict[str, str] = {
    NotificationKind.SKILL_HIDDEN: N_(
        'An administrator hid your skill "{title}" from the marketplace.'
    ),
    NotificationKind.SKILL_RESTORED: N_('Your skill "{title}" is listed again.'),
}

_RESOLUTION_OUTCOMES: dict[str, str] = {
    Resolution.REFUND: N_("The buyer's points were refunded."),
    Resolution.RELEASE: N_("The points were released to the seller."),
    Resolution.SPLIT: N_("The points were split between the buyer and the seller."),
}

# The web app's page each kind links to, filled from the mail's context. A kind left out has
# no link (the ledger alert: its reader's next step is `skillswap ledger check`).
_LINKS: dict[MailKind, str] = {
    MailKind.VERIFY_EMAIL: "/verify-email?token={token}",
    MailKind.PASSWORD_RESET: "/reset-password?token={token}",
    MailKind.ORDER_PLACED: "/orders/{order}",
    MailKind.ORDER_TRANSITIONED: "/orders/{order}",
    MailKind.DISPUTE_RESOLVED: "/orders/{order}",
    MailKind.REVIEW_RECEIVED: "/orders/{order}",
    MailKind.CHAT_DIGEST: "/chat/{room}",
    MailKind.SKILL_MODERATED: "/skills/{skill}",
    MailKind.POINTS_ADJUSTED: "/points/transactions",
    MailKind.DELETION_SCHEDULED: "/account/delete/cancel",
    MailKind.DATA_EXPORT_READY: "/api/auth/account/export/{token}/",
    MailKind.LESSON_REMINDER: "/orders/{order}",
}


def links_base(settings: Settings) -> str:
    """Where the links in mails start: PUBLIC_URL, else the address `serve` listens on."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


@functools.cache
def _environment() -> jinja2.Environment:
    # Built on first use, once per process; templates are compiled once and cached by jinja2.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a context missing a value fails, never sends blanks
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _translation_functions(translator: Translator) -> dict[str, Callable[..., str]]:
    def gettext(msgid: str, **params: Any) -> str:
        text = translator.gettext(msgid)
        return text.format(**params) if params else text

    def ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
        return translator.ngettext(singular, plural, n).format(n=n, **params)

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def _derived(kind: MailKind, context: Mapping[str, Any], translator: Translator) -> dict[str, Any]:
    """What the templates show that is computed from the context: the headline, the outcome."""
    if kind == MailKind.ORDER_TRANSITIONED:
        msgid = _TRANSITION_HEADLINES.get(context["action"], _OTHER_TRANSITION)
        return {"headline": translator.gettext(msgid).format(order=context["order"])}
    if kind == MailKind.DISPUTE_RESOLVED:
        return {"outcome": translator.gettext(_RESOLUTION_OUTCOMES[context["resolution"]])}
    if kind == MailKind.SKILL_MODERATED:
        msgid = _MODERATION_HEADLINES[context["change"]]
        return {"headline": translator.gettext(msgid).format(title=context["title"])}
    return {}


def render_email(
    kind: MailKind,
    *,
    to: str,
    translator: Translator,
    base_url: str,
    context: Mapping[str, Any],
    message_id: str = "",
) -> OutgoingEmail:
    """The mail of `kind` to `to`, in the translator's language.

    `context` holds what the kind's templates name: always `name` (the recipient's display
    name); `token` and `ttl_seconds` for the emailed codes; `order` for the order mails, with
    `skill`, `buyer` and `points` (placed), `action` and `note` (transitioned), `resolution` and
    `note` (dispute), `reviewer` and `rating` (review; None while the review is hidden); for the
    chat digest `room`, `sender` (who wrote), `count` (unread) and `messages` (the latest few,
    each a `sender` and a `text`); for the ledger alert `checked_at`, `total` and `violations`
    (each an `invariant` and a `detail`); for a suspended account `reason`; for a moderated
    skill `skill` (its id), `title` (in the reader's language), `change` (the notification's
    kind: `skill_hidden` or `skill_restored`) and `note`; for an adjusted wallet `amount`
    (signed: positive was credited), `reason` and `balance` (after it; None when unknown); for
    a scheduled deletion `scheduled_for` (the date, as text); for a data export `token` (the
    single-use download) and `ttl_seconds`; for a lesson reminder `order`, `skill` (its title
    in the reader's language), `other` (the other participant's name) and `starts` (the start
    in the reader's language and time zone, as text).
    """
    path = _LINKS.get(kind)
    link = ""
    if path is not None:
        link_params = {key: quote(str(value), safe="") for key, value in context.items()}
        link = base_url.rstrip("/") + path.format(**link_params)
    values: dict[str, Any] = {
        **context,
        **_derived(kind, context, translator),
        **_translation_functions(translator),
        "link": link,
        "locale": translator.locale,
        "direction": translator.direction,
    }
    environment = _environment()
    text = environment.get_template(f"{kind}.txt").make_module(values)
    subject = str(text.subject).strip()  # type: ignore[attr-defined]
    html = environment.get_template(f"{kind}.html").render(values, subject=subject)
    return OutgoingEmail(
        to=to,
        subject=subject,
        body=str(text).strip() + "\n",
        kind=kind,
        context={
            key: str(value)
            for key, value in {**context, "link": link}.items()
            if key in {"token", "link", "order"}
        },
        html=html,
        locale=translator.locale,
        message_id=message_id,
    )
