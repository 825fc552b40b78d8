"""The cancellation rule of lessons: what the teacher keeps when the buyer cancels.

The buyer cancels a pending or accepted lesson until its start. A booking the teacher has not
confirmed yet (pending) is always cancelled free; a confirmed one (accepted) is free more than
LESSON_FREE_CANCEL_SECONDS before the start (the hold is voided), and later half the price
(rounded down) goes to the teacher, less the platform fee on that half as in a split
resolution, and the rest goes back to the buyer. The seller cancelling always refunds the
buyer in full. (A buyer who does not come at all pays the whole price: `no_show`.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from skillswap.settings import Settings


def teacher_share(
    *, price: int, starts_at: datetime, confirmed: bool, now: datetime, settings: Settings
) -> int:
    """The points a buyer's cancellation at `now` leaves the teacher (0: a free cancellation).

    `confirmed`: the teacher has accepted the booking; until then it holds no time of theirs
    they could have sold elsewhere on the strength of a confirmation.
    """
    if not confirmed:
        return 0
    if starts_at - now > timedelta(seconds=settings.lesson_free_cancel_seconds):
        return 0
    return price // 2
