"""Fingerprints group the same failure at the same place, whatever ids it names."""

from __future__ import annotations

import pytest

from platypus.ops.store import fingerprint, normalize_message

PERMANENT = "platypus.exceptions.PermanentError"


def test_messages_differing_only_by_ids_and_numbers_share_a_fingerprint() -> None:
    text = "POST http://127.0.0.1:{}/orders answered 400 Bad Request: account {} is closed"
    one = text.format(51234, "001000000000000017")
    two = text.format(40001, "001000000000000042")
    assert fingerprint(PERMANENT, "orders", "create", one, status_code=400) == fingerprint(
        PERMANENT, "orders", "create", two, status_code=400
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("error_class", "platypus.exceptions.RetryableError"),
        ("flow", "invoices"),
        ("step", "notify"),
        ("message", "answered 400 Bad Request: currency not enabled"),
    ],
)
def test_a_different_class_flow_step_or_reason_makes_another_fingerprint(
    field: str, value: str
) -> None:
    base = {
        "error_class": PERMANENT,
        "flow": "orders",
        "step": "create",
        "message": "answered 400 Bad Request: account is closed",
    }
    changed = {**base, field: value}
    assert fingerprint(**base) != fingerprint(**changed)


def test_status_and_vendor_code_are_part_of_the_fingerprint() -> None:
    args = (PERMANENT, "orders", "create", "rejected")
    assert fingerprint(*args, status_code=400) != fingerprint(*args, status_code=422)
    assert fingerprint(*args, vendor_code="A") != fingerprint(*args, vendor_code="B")


def test_normalizing_replaces_uuids_quoted_values_and_tokens_with_digits() -> None:
    text = "event 'evt-12' for 3f2b1c9e-0a4d-4c1e-9d2f-7a8b9c0d1e2f failed after 3 tries at 10:02"
    assert normalize_message(text) == "event <v> for <n> failed after <n> tries at <n>"


def test_fingerprints_are_short_stable_hex() -> None:
    found = fingerprint(PERMANENT, "orders", "create", "boom")
    assert found == fingerprint(PERMANENT, "orders", "create", "boom")
    assert len(found) == 16
    int(found, 16)
