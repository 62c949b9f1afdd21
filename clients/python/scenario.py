"""End-to-end scenario for the Python client generated from openapi/openapi.json.

scripts/clients-test runs

    openapi-python-client generate --path openapi/openapi.json --output-path <dir>/herald-client

installs the generated package (``herald_client``) into the clients venv and runs this
file against a throw-away stack. Every call goes through the generated endpoint modules
and models; nothing here is hand-written per endpoint.

Environment (all required except CLIENT_USER_ID and CLIENT_ORDER_ID):
    CLIENT_API_URL, CLIENT_GATEWAY_URL       base URLs of herald-api and herald-gateway
    CLIENT_SERVICE_TOKEN                     a token with scope `publish`
    CLIENT_USER_TOKEN, CLIENT_USER_ID        the customer's token and id (default alice)
    CLIENT_READER_TOKEN, CLIENT_FEED         a token whose topics claim grants feed:{CLIENT_FEED}
    CLIENT_ORDER_ID                          default: a new unique id
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from typing import Any

from herald_client import AuthenticatedClient, Client
from herald_client.api.feeds import list_activities, post_activity
from herald_client.api.inbox import counts, list_, mark_read
from herald_client.api.orders import change_status, get_order, put_order
from herald_client.api.streaming import stream
from herald_client.models import (
    Activity,
    ActivityPage,
    ChangeStatus,
    Counts,
    Notification,
    NotificationPage,
    Order,
    OrderStatus,
    PostActivity,
    Problem,
    PutOrder,
)
from herald_client.types import Response


class CheckFailed(Exception):
    pass


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name) or default
    if not value:
        raise CheckFailed(f"environment variable {name} is required")
    return value


API_URL = env("CLIENT_API_URL")
GATEWAY_URL = env("CLIENT_GATEWAY_URL")
USER_ID = env("CLIENT_USER_ID", "alice")
FEED = env("CLIENT_FEED")
ORDER_ID = env("CLIENT_ORDER_ID", f"py-{int(time.time() * 1000):x}-{secrets.token_hex(3)}")

LIFECYCLE = [
    OrderStatus.PLACED,
    OrderStatus.PAID,
    OrderStatus.PACKED,
    OrderStatus.SHIPPED,
    OrderStatus.OUT_FOR_DELIVERY,
    OrderStatus.DELIVERED,
]


def authed(base_url: str, token: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=base_url, token=token, timeout=30.0)


service = authed(API_URL, env("CLIENT_SERVICE_TOKEN"))
user = authed(API_URL, env("CLIENT_USER_TOKEN"))
reader = authed(API_URL, env("CLIENT_READER_TOKEN"))
user_at_gateway = authed(GATEWAY_URL, env("CLIENT_USER_TOKEN"))
anonymous = Client(base_url=API_URL, timeout=30.0)


def check(cond: Any, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def eq(actual: Any, expected: Any, what: str) -> None:
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def expect_ok(r: Response[Any], status: int, model: type, what: str) -> Any:
    check(
        r.status_code == status and isinstance(r.parsed, model),
        f"{what}: expected HTTP {status} with a {model.__name__}, got {int(r.status_code)} "
        f"{type(r.parsed).__name__}: {r.content[:500]!r}",
    )
    return r.parsed


def expect_problem(r: Response[Any], status: int, what: str) -> Problem:
    eq(int(r.status_code), status, f"{what}: HTTP status")
    ct = r.headers.get("content-type", "")
    check(ct.startswith("application/problem+json"), f"{what}: content-type is {ct!r}, not application/problem+json")
    check(isinstance(r.parsed, Problem), f"{what}: parsed as {type(r.parsed).__name__}, not Problem")
    problem: Problem = r.parsed
    eq(problem.status, status, f"{what}: problem.status")
    check(problem.type_, f"{what}: problem.type")
    check(problem.title, f"{what}: problem.title")
    return problem


STEPS = 0


def step(name: str):
    def run(body):
        global STEPS
        t0 = time.monotonic()
        body()
        STEPS += 1
        print(f"  ok  {name} ({(time.monotonic() - t0) * 1000:.0f} ms)", flush=True)
        return body

    return run


def main() -> None:
    print(f"python scenario: api {API_URL}, gateway {GATEWAY_URL}, order {ORDER_ID}, feed {FEED}", flush=True)
    state: dict[str, Any] = {}

    @step("401 problem without a token")
    def _():
        expect_problem(counts.sync_detailed(client=anonymous), 401, "GET /v1/me/notifications/counts without a token")

    @step(f"PUT /v1/orders/{ORDER_ID} creates the order (201), again updates it (200)")
    def _():
        created: Order = expect_ok(
            put_order.sync_detailed(ORDER_ID, client=service, body=PutOrder(customer_id=USER_ID)), 201, Order, "PUT order"
        )
        eq(created.order_id, ORDER_ID, "order_id")
        eq(created.customer_id, USER_ID, "customer_id")
        eq(created.status, OrderStatus.PLACED, "initial status")
        eq(len(created.timeline), 1, "timeline after create")
        again: Order = expect_ok(
            put_order.sync_detailed(ORDER_ID, client=service, body=PutOrder(customer_id=USER_ID)),
            200,
            Order,
            "PUT order again",
        )
        eq(again.status, OrderStatus.PLACED, "status after second PUT")

    @step("POST /v1/orders/{id}/status: placed → … → delivered")
    def _():
        for status in LIFECYCLE[1:]:
            order: Order = expect_ok(
                change_status.sync_detailed(ORDER_ID, client=service, body=ChangeStatus(status=status)),
                200,
                Order,
                f"status → {status}",
            )
            eq(order.status, status, f"status after → {status}")

    @step("illegal transition delivered → paid is a 409 problem naming from/to")
    def _():
        problem = expect_problem(
            change_status.sync_detailed(ORDER_ID, client=service, body=ChangeStatus(status=OrderStatus.PAID)),
            409,
            "delivered → paid",
        )
        eq(problem["from"], "delivered", "problem.from")
        eq(problem["to"], "paid", "problem.to")

    @step("GET /v1/orders/{id} as the customer: 6 timeline entries in order")
    def _():
        order: Order = expect_ok(get_order.sync_detailed(ORDER_ID, client=user), 200, Order, "GET order as customer")
        eq(order.status, OrderStatus.DELIVERED, "current status")
        eq([e.status for e in order.timeline], LIFECYCLE, "timeline statuses")
        times = [e.at for e in order.timeline]
        check(times == sorted(times), f"timeline times not ascending: {times}")
        expect_problem(get_order.sync_detailed(ORDER_ID, client=reader), 404, "GET order as another user")

    @step("GET /v1/me/notifications: the order's 6 notifications, newest first")
    def _():
        mine: list[Notification] = []
        total = 0
        cursor: str | None = None
        for _page in range(50):
            kwargs: dict[str, Any] = {"category": "order", "limit": 100}
            if cursor:
                kwargs["cursor"] = cursor
            page: NotificationPage = expect_ok(
                list_.sync_detailed(client=user, **kwargs), 200, NotificationPage, "list notifications"
            )
            total += len(page.items)
            for n in page.items:
                eq(n.category, "order", "category")
                if isinstance(n.data, dict) and n.data.get("order_id") == ORDER_ID:
                    mine.append(n)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        check(total >= 6, f"expected at least 6 order notifications, got {total}")
        eq(
            [n.data["status"] for n in mine],
            [str(s) for s in reversed(LIFECYCLE)],
            "statuses of this order's notifications (newest first)",
        )
        check(all(n.read_at is None for n in mine), "the new notifications are unread")
        state["unread_id"] = mine[0].id

    @step("POST /v1/me/notifications/{id}/read lowers the unread count by 1")
    def _():
        nid = state["unread_id"]
        before: Counts = expect_ok(counts.sync_detailed(client=user), 200, Counts, "counts before")
        check(before.unread >= 6, f"unread before is {before.unread}")
        read: Notification = expect_ok(mark_read.sync_detailed(nid, client=user), 200, Notification, "mark read")
        eq(read.id, nid, "marked notification id")
        check(read.read_at is not None, "read_at is set")
        after: Counts = expect_ok(counts.sync_detailed(client=user), 200, Counts, "counts after")
        eq(after.unread, before.unread - 1, "unread after marking one read")
        eq(after.total, before.total, "total after marking one read")
        expect_ok(mark_read.sync_detailed(nid, client=user), 200, Notification, "mark read again")
        again: Counts = expect_ok(counts.sync_detailed(client=user), 200, Counts, "counts after again")
        eq(again.unread, after.unread, "unread after marking it read twice")
        expect_problem(mark_read.sync_detailed(nid, client=reader), 404, "another user's notification")

    @step(f"POST /v1/feeds/{FEED}/activities ×5 (201)")
    def _():
        posted = []
        for i in range(1, 6):
            a: Activity = expect_ok(
                post_activity.sync_detailed(
                    FEED,
                    client=service,
                    body=PostActivity(actor=f"user:{USER_ID}", verb="commented", object_=f"post:{i}"),
                ),
                201,
                Activity,
                f"activity {i}",
            )
            eq(a.feed, FEED, "activity.feed")
            eq(a.object_, f"post:{i}", "activity.object")
            posted.append(a.id)
        state["posted"] = posted

    @step("GET /v1/feeds/{feed}/activities?limit=2 following next_cursor: all 5, once, newest first")
    def _():
        seen = []
        sizes = []
        cursor: str | None = None
        for page_no in range(1, 11):
            kwargs: dict[str, Any] = {"limit": 2}
            if cursor:
                kwargs["cursor"] = cursor
            page: ActivityPage = expect_ok(
                list_activities.sync_detailed(FEED, client=reader, **kwargs), 200, ActivityPage, f"feed page {page_no}"
            )
            check(len(page.items) <= 2, f"page {page_no} has {len(page.items)} items (limit 2)")
            sizes.append(len(page.items))
            seen.extend(a.id for a in page.items)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        else:
            raise CheckFailed("pagination did not end after 10 pages")
        eq(seen, list(reversed(state["posted"])), f"activity ids over pages of {sizes}")
        expect_problem(list_activities.sync_detailed(FEED, client=user), 403, "feed read without a granting topics claim")

    @step("gateway GET /v1/stream refuses an ungranted topic with a 403 problem")
    def _():
        expect_problem(
            stream.sync_detailed(client=user_at_gateway, topics=f"feed:{FEED}"), 403, "stream of feed:{feed} without a grant"
        )

    print(f"python scenario: {STEPS} steps passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print(f"python scenario FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
