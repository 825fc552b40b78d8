"""Review endpoints: review an order's other participant; read a user's or a skill's reviews."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from skillswap.http.accounts import user_public
from skillswap.http.base import BaseHandler, idempotent, path_id, public, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.orders import review_json
from skillswap.http.query import PageQuery
from skillswap.http.schemas import OrderReviewOut, Page, PublicReviewOut
from skillswap.http.validation import Body
from skillswap.i18n import Translator, in_language
from skillswap.reviews import services as reviews
from skillswap.reviews.services import ReviewView


class ReviewBody(Body):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)


def public_review_json(
    view: ReviewView, locale: str, translator: Translator | None = None
) -> dict[str, Any]:
    """A public review with its author's public profile and the skill it was ordered for."""
    return {
        **review_json(view.review),
        "order_id": view.review.order_id,
        "reviewee_id": view.review.reviewee_id,
        "reviewer": user_public(view.reviewer, translator),
        "skill": {
            "id": view.skill_id,
            "title": in_language(view.skill_title_en, view.skill_title_ar, locale)[0],
        },
    }


class OrderReviewHandler(BaseHandler):
    @operation(
        "reviewOrder",
        tag="Reviews",
        body=ReviewBody,
        response=OrderReviewOut,
        status=201,
        problems=(403, 404, 409),
    )
    @idempotent
    async def post(self, order_id: str) -> None:
        """Review the other participant of a completed order (once; hidden until both reviewed
        or the review window closes)."""
        body = self.parse_body(ReviewBody)
        review = await reviews.submit_review(
            self.deps,
            actor=self.user,
            order_id=path_id(order_id),
            rating=body.rating,
            comment=body.comment,
        )
        self.send({**review_json(review), "order_id": review.order_id}, status=201)

    def location_of(self, created: Any) -> str:
        return f"/api/points/orders/{created['order_id']}/review/"


class UserReviewsHandler(BaseHandler):
    @operation(
        "listUserReviews",
        tag="Reviews",
        response=Page[PublicReviewOut],
        paged=True,
        problems=(404,),
    )
    @public
    @takes_query(PageQuery)
    async def get(self, user_id: str) -> None:
        """The public reviews about a user, newest first."""
        page = self.page_params()
        count, views = await reviews.list_user_reviews(
            self.deps, user_id=path_id(user_id), offset=page.offset, limit=page.page_size
        )
        locale = self.translator.locale
        self.send_page(
            page,
            count=count,
            results=[public_review_json(v, locale, self.translator) for v in views],
        )


class SkillReviewsHandler(BaseHandler):
    @operation(
        "listSkillReviews",
        tag="Reviews",
        response=Page[PublicReviewOut],
        paged=True,
        problems=(404,),
    )
    @public
    @takes_query(PageQuery)
    async def get(self, skill_id: str) -> None:
        """The public reviews buyers wrote about a skill, newest first."""
        page = self.page_params()
        count, views = await reviews.list_skill_reviews(
            self.deps, skill_id=path_id(skill_id), offset=page.offset, limit=page.page_size
        )
        locale = self.translator.locale
        self.send_page(
            page,
            count=count,
            results=[public_review_json(v, locale, self.translator) for v in views],
        )


routes = [
    route(r"/api/points/orders/(?P<order_id>\d+)/review/", OrderReviewHandler),
    route(r"/api/users/(?P<user_id>\d+)/reviews/", UserReviewsHandler),
    route(r"/api/skills/(?P<skill_id>\d+)/reviews/", SkillReviewsHandler),
]
