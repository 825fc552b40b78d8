"""The response models: the exact shape of every success answer, as the OpenAPI document shows it.

Handlers answer with plain dicts built by one serialiser per shape (`user_public`,
`skill_view`, `order_json`, ...), which is the fast path on the hot lists; each serialiser's
output is declared here once, every operation names its model (`@operation(response=...)`),
and the test suite checks every answer it receives against the declared model. The models
forbid unknown members, so a serialiser that grows a field without its model fails the tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from skillswap.models.notifications import NotificationKind

T = TypeVar("T")


def _no_default(schema: dict[str, Any]) -> None:
    # For a member that is sometimes absent: its Python default (None) is not a JSON value.
    schema.pop("default", None)


class Out(BaseModel):
    """A response document: every member listed, nothing else."""

    model_config = ConfigDict(extra="forbid")


class Page(Out, Generic[T]):
    """The list envelope: `results` of one page, links to the neighbouring pages."""

    count: int = Field(description="Items across all pages")
    next: str | None = Field(description="Absolute URL of the next page")
    previous: str | None = Field(description="Absolute URL of the previous page")
    results: list[T]

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        # `SkillOutPage`, not `Page[SkillOut]`: a component name code generators accept.
        return f"{params[0].__name__}Page"


# -- accounts ------------------------------------------------------------------------------------


class UserPublic(Out):
    """What anyone may see of a user."""

    id: int
    username: str
    display_name: str = Field(description='"a deleted user" (translated) for a deleted account')
    deleted: bool = Field(description="The account was deleted; its records stay")
    avatar_url: str
    bio: str
    verified: bool = Field(description="The email address was confirmed")
    is_verified: bool = Field(description="The trust badge an administrator gave")
    rating_average: float | None
    rating_count: int
    joined_at: datetime


class UserPrivate(UserPublic):
    """The owner's own view of the account."""

    email: str
    phone: str
    locale: str
    timezone: str = Field(description="The IANA time zone one's lesson times are shown in")
    is_admin: bool
    has_password: bool
    deletion_scheduled_for: datetime | None = Field(
        description="When the account will be deleted, if the user asked (cancellable until then)"
    )


class Tokens(Out):
    """A session's credentials."""

    access: str
    refresh: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires")


class SignedIn(Tokens):
    """A sign-in's answer: the user's own view and the session's credentials."""

    user: UserPrivate


class EmailVerified(Out):
    verified: bool
    user_id: int


class Sent(Out):
    sent: bool


class PasswordReset(Out):
    reset: bool


class PasswordChanged(Out):
    changed: bool


class GoogleSignInStart(Out):
    """Where to send the browser to sign in with Google."""

    authorization_url: str
    state: str


# -- skills --------------------------------------------------------------------------------------


class SkillImageOut(Out):
    id: int
    url: str = Field(description="Absolute URL")
    content_type: str
    width: int
    height: int


class SkillCategoryRef(Out):
    id: int
    slug: str
    name: str
    parent_id: int | None


class SkillOwner(Out):
    id: int
    username: str
    display_name: str
    avatar_url: str
    is_verified: bool = Field(description="The trust badge an administrator gave")
    rating_average: float | None
    rating_count: int


class SkillOut(Out):
    """A listing, its text in the reader's language (else the other one)."""

    id: int
    title: str
    description: str
    language: str = Field(description="The language `title` and `description` are in")
    title_en: str
    title_ar: str
    description_en: str
    description_ar: str
    category: SkillCategoryRef
    price_points: int
    level: Literal["beginner", "intermediate", "advanced", "expert"]
    languages: list[str]
    tags: list[str]
    delivery_days: int
    lesson_minutes: int | None = Field(
        description="A lesson of this many minutes, booked at a time; null: work delivered"
    )
    status: str = Field(json_schema_extra={"enum": ["active", "paused", "hidden"]})
    moderation_note: str | None = Field(
        description="Why an administrator hid it (`status: hidden`, seen by its owner only)"
    )
    rating_average: float | None
    rating_count: int
    orders_completed: int
    images: list[SkillImageOut]
    owner: SkillOwner
    created_at: datetime
    updated_at: datetime


class SkillPaused(Out):
    """A delete refused because of open orders: the skill was paused instead (or stays hidden,
    if an administrator hid it)."""

    status: Literal["paused", "hidden"]
    open_orders: bool
    detail: str


class CategoryOut(Out):
    """A category in the reader's language, with both names."""

    id: int
    slug: str
    name: str
    name_en: str
    name_ar: str
    icon: str
    parent_id: int | None
    position: int


class CategoryCounted(CategoryOut):
    skill_count: int = Field(description="Active skills in it, its children's included")


class CategoryTreeNode(CategoryCounted):
    """A top-level category with its active children."""

    children: list[CategoryCounted]


class AdminCategoryOut(CategoryOut):
    is_active: bool


# -- orders and reviews --------------------------------------------------------------------------


class OrderSkillRef(Out):
    id: int
    title: str


class Settlement(Out):
    seller_points: int
    fee_points: int
    refunded_points: int


class TransitionOut(Out):
    """One step of an order's history."""

    action: str
    from_status: str | None
    to_status: str
    actor_id: int | None = Field(description="null: a deadline moved the order")
    note: str
    at: datetime


class ReviewOut(Out):
    """A review as someone allowed to read it sees it."""

    id: int
    rating: int
    comment: str
    reviewer_id: int
    reviewer_role: str
    created_at: datetime


class OrderReviews(Out):
    can_review: bool
    window_closes_at: datetime | None
    mine: ReviewOut | None
    theirs: ReviewOut | None
    theirs_submitted: bool


class LessonTime(Out):
    """When an order's lesson takes place (UTC)."""

    starts_at: datetime
    ends_at: datetime
    minutes: int
    proposed_starts_at: datetime | None = Field(
        description="A new start one party proposed, not yet accepted"
    )
    proposed_by: int | None = Field(description="Who proposed it")


class OrderOut(Out):
    """An order as its viewer sees it; `history` and `reviews` on a single order's read."""

    id: int
    status: str
    skill: OrderSkillRef
    buyer: UserPublic
    seller: UserPublic
    roles: list[Literal["buyer", "seller", "admin"]]
    price_points: int
    requirements: str
    deadline_at: datetime | None
    resolution: str | None
    settlement: Settlement | None
    allowed_actions: list[str]
    room_id: int | None = Field(description="The order's chat room")
    lesson: LessonTime | None = Field(description="null: the order is not of a lesson skill")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    # Present or absent, never null (the schema shows neither null nor a default).
    history: list[TransitionOut] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default
    )
    reviews: OrderReviews | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default
    )


class OrderReviewOut(ReviewOut):
    order_id: int


class ReviewSkillRef(Out):
    id: int
    title: str


class PublicReviewOut(ReviewOut):
    """A public review with its author's profile and the skill it was ordered for."""

    order_id: int
    reviewee_id: int
    reviewer: UserPublic
    skill: ReviewSkillRef


# -- chat ----------------------------------------------------------------------------------------


class MessageOut(Out):
    id: int
    sender: int = Field(description="The sender's user id")
    body: str
    created_at: datetime
    client_id: str | None


class RoomOut(Out):
    id: int
    kind: Literal["order", "direct"]
    order_id: int | None
    members: list[UserPublic]
    last_message: MessageOut | None
    unread_count: int
    last_read_id: int
    last_activity_at: datetime
    created_at: datetime


class RoomDetailOut(RoomOut):
    messages: list[MessageOut] = Field(description="Oldest first")
    has_more: bool = Field(description="Older messages exist (ask with ?before=)")


class ReadReceipt(Out):
    room: int
    last_read_id: int
    unread_count: int


# -- points, packages, notifications -------------------------------------------------------------


class BalanceOut(Out):
    balance: int
    held: int = Field(description="Held in escrow for open orders")
    available: int


class TransactionOut(Out):
    id: int
    transfer_id: int
    amount: int = Field(description="Signed: positive credits, negative debits")
    direction: Literal["credit", "debit"]
    kind: str
    description: str
    balance_after: int
    order_id: int | None
    payment_id: int | None
    created_at: datetime


class PackagePriceOut(Out):
    """One of a package's prices."""

    currency: str = Field(description="ISO 4217")
    amount_minor: int
    amount: str = Field(description="Exact decimal string in major units, e.g. `4.99`")


class PackageOut(Out):
    id: int
    name: str = Field(description="In the reader's language")
    name_en: str
    name_ar: str
    points: int
    price: str = Field(description="The default price, exact decimal string, e.g. `4.99`")
    price_minor: int
    currency: str
    prices: list[PackagePriceOut] = Field(
        description="Every price, the default (`price_minor`/`currency`) first"
    )


class AdminPackageOut(PackageOut):
    is_active: bool
    sort_order: int
    created_at: datetime
    updated_at: datetime


class NotificationOut(Out):
    id: int
    kind: str
    text: str = Field(description="In the reader's language")
    payload: dict[str, Any]
    read: bool
    created_at: datetime
    read_at: datetime | None


class Updated(Out):
    updated: int


class DeviceOut(Out):
    """A device push notifications go to."""

    id: int
    token: str = Field(description="The push token (FCM registration token)")
    platform: Literal["android", "ios", "web"]
    created_at: datetime


class ChannelsOut(Out):
    """Where one kind of notification goes besides the live stream."""

    email: bool
    push: bool


def _per_kind(name: str, model: type[BaseModel], doc: str) -> type[Out]:
    kinds = [kind.value for kind in NotificationKind]
    fields: dict[str, Any] = {kind: (model, ...) for kind in kinds}
    built: type[Out] = create_model(name, __base__=Out, __doc__=doc, **fields)
    return built


KindChannels = _per_kind("KindChannels", ChannelsOut, "The channels of every notification kind.")


class PreferencesOut(Out):
    """A user's channels for every notification kind (the WebSocket always gets everything)."""

    preferences: KindChannels  # type: ignore[valid-type]
    fixed: dict[str, ChannelsOut] = Field(
        description="The kinds whose channels cannot be changed (security mails), and their value"
    )


# -- operations ----------------------------------------------------------------------------------


class Health(Out):
    status: Literal["ok"]


class Readiness(Out):
    status: Literal["ready"]
    checks: dict[str, Literal["ok", "down"]]
