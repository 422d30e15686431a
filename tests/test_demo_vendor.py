"""The stand-in vendor of ``platypus run --demo``, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from platypus._server import ServerThread
from platypus.demo_vendor import DemoVendor, create_vendor_app


@pytest.fixture
def vendor_app() -> Iterator[tuple[httpx.Client, DemoVendor]]:
    """An HTTP client on a running stand-in vendor, and the vendor's in-process state."""
    app = create_vendor_app()
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        yield client, app.state.vendor


def post(
    client: httpx.Client, path: str, key: str | None = "k-1", **json: object
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(path, json=json or {"n": 1}, headers=headers)


def test_orders_are_accepted_with_increasing_ids(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, _ = vendor_app

    first = post(client, "/orders", key="a")
    second = client.put("/customers/9", json={"n": 2}, headers={"Idempotency-Key": "b"})

    assert (first.status_code, first.json()) == (201, {"id": "ORD-1"})
    assert (second.status_code, second.json()) == (201, {"id": "ORD-2"})


def test_received_lists_accepted_requests_in_order_without_authorization(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, vendor = vendor_app
    client.post(
        "/orders",
        json={"n": 1},
        headers={"Authorization": "Bearer secret", "X-Tenant": "Acme", "Idempotency-Key": "a"},
    )
    client.put("/orders/1", json={"n": 2}, headers={"Idempotency-Key": "b"})
    post(client, "/reject/x")  # refused, so not received

    received = client.get("/_received").json()

    assert [(r["method"], r["path"], r["json"]) for r in received] == [
        ("POST", "/orders", {"n": 1}),
        ("PUT", "/orders/1", {"n": 2}),
    ]
    assert received[0]["headers"]["x-tenant"] == "Acme"
    assert received[0]["headers"]["idempotency-key"] == "a"
    assert "authorization" not in received[0]["headers"]
    assert vendor.received == received  # the same state, read in process


def test_flaky_fails_twice_per_key_then_accepts(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, _ = vendor_app

    statuses = [post(client, "/flaky/orders", key="a").status_code for _ in range(4)]
    other_key = post(client, "/flaky/orders", key="b").status_code

    assert statuses == [503, 503, 201, 201]
    assert other_key == 503


def test_flaky_without_a_key_counts_attempts_per_body(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, _ = vendor_app

    same_body = [post(client, "/flaky/x", key=None, n=1).status_code for _ in range(3)]
    other_body = post(client, "/flaky/x", key=None, n=2).status_code

    assert same_body == [503, 503, 201]
    assert other_body == 503


def test_throttled_answers_429_with_retry_after_once_per_key(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, _ = vendor_app

    first = post(client, "/throttled/orders", key="a")
    second = post(client, "/throttled/orders", key="a")

    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert second.status_code == 201
    assert "Retry-After" not in second.headers


def test_reject_always_answers_400_invalid_field(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, vendor = vendor_app

    answers = [post(client, "/reject/orders", key="a") for _ in range(3)]

    assert {a.status_code for a in answers} == {400}
    assert {a.json()["error"] for a in answers} == {"INVALID_FIELD"}
    assert all(a.json()["message"] for a in answers)
    assert vendor.received == []


def test_slow_waits_the_given_milliseconds_then_accepts(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, _ = vendor_app

    started = time.monotonic()
    answer = post(client, "/slow/orders?ms=300")
    elapsed = time.monotonic() - started

    assert answer.status_code == 201
    assert elapsed >= 0.3


def test_a_repeated_key_is_answered_with_the_first_id_and_recorded_once(
    vendor_app: tuple[httpx.Client, DemoVendor],
) -> None:
    client, vendor = vendor_app

    first = post(client, "/orders", key="same")
    again = post(client, "/orders", key="same")

    assert first.json() == again.json() == {"id": "ORD-1"}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(vendor.received) == 1


def test_stats_count_answers_per_status(vendor_app: tuple[httpx.Client, DemoVendor]) -> None:
    client, vendor = vendor_app
    for _ in range(3):
        post(client, "/flaky/a")
    post(client, "/reject/a")

    stats = client.get("/_stats").json()

    assert stats == {"201": 1, "400": 1, "503": 2}
    assert vendor.stats == {201: 1, 400: 1, 503: 2}


def test_each_app_has_its_own_state() -> None:
    first, second = create_vendor_app(), create_vendor_app()

    assert first.state.vendor is not second.state.vendor


def test_server_thread_stops_and_frees_its_port() -> None:
    server = ServerThread(create_vendor_app())
    url = server.start()
    assert httpx.get(f"{url}/_stats").status_code == 200

    server.stop()

    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_stats")
