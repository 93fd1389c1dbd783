"""What the status feed treats as news: state changes at once, a ticking delivery time not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_recorder.fleet.statusfeed import StatusFeed, _news
from edge_recorder.status import DeviceStatus
from tests.support.helpers import async_poll_until

T0 = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def test_a_first_delivery_is_news_but_each_later_one_is_not() -> None:
    never = DeviceStatus(state="recording")
    first = DeviceStatus(state="recording", last_delivery_at=T0)
    later = DeviceStatus(state="recording", last_delivery_at=T0 + timedelta(seconds=1))
    assert _news(never) != _news(first)
    assert _news(first) == _news(later)
    assert _news(later) != _news(DeviceStatus(state="idle", last_delivery_at=T0))


async def test_acknowledgements_alone_do_not_republish_the_status() -> None:
    reads: list[DeviceStatus] = []
    delivered: list[DeviceStatus] = []
    state = {"value": "recording"}

    def provider() -> DeviceStatus:
        status = DeviceStatus(
            state=state["value"],  # type: ignore[arg-type]
            last_delivery_at=T0 + timedelta(seconds=len(reads)),
        )
        reads.append(status)
        return status

    feed = StatusFeed(provider, delivered.append, interval_s=3600)
    feed.start()
    try:
        feed.changed()  # the loop's first pass publishes (it has no signature yet)
        await async_poll_until(lambda: len(delivered) == 2, what="the first pass")
        for _ in range(3):  # three acks later: read three more times, not published
            before = len(reads)
            feed.changed()
            await async_poll_until(lambda b=before: len(reads) > b, what="a status read")
        assert len(delivered) == 2
        state["value"] = "idle"
        feed.changed()
        await async_poll_until(lambda: len(delivered) == 3, what="the state change published")
        assert delivered[-1].state == "idle"
    finally:
        feed.stop()


async def test_an_offered_status_is_the_news_check_and_the_feed_stops_polling() -> None:
    """The daemon hands over the status its health pass built: news is published (a copy),
    the same status again is not, and the feed's own wait becomes the interval."""
    reads: list[DeviceStatus] = []
    delivered: list[DeviceStatus] = []

    def provider() -> DeviceStatus:
        reads.append(DeviceStatus())
        return reads[-1]

    feed = StatusFeed(provider, delivered.append, interval_s=3600)
    feed.start()  # publishes the first status at once
    try:
        offered = DeviceStatus(state="recording")
        feed.offer(offered)
        assert len(delivered) == 2 and delivered[-1] == offered
        assert delivered[-1] is not offered  # the supervisor thread gets its own copy
        feed.offer(DeviceStatus(state="recording"))
        assert len(delivered) == 2  # nothing new
        assert feed._poll_s() == 3600  # no one-second poll of its own any more
    finally:
        feed.stop()
