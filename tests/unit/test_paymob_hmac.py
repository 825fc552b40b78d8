"""Paymob's HMAC string, checked against the sample on Paymob's HMAC page (not against our fake)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from skillswap.payments.gateway import WebhookRefused
from skillswap.payments.paymob_gateway import (
    processed_hmac_values,
    response_hmac_values,
    verify_paymob_hmac,
)

# The transaction of Paymob's sample processed callback (the signed fields and a few others).
SAMPLE = {
    "id": 192036465,
    "pending": False,
    "amount_cents": 100000,
    "success": True,
    "is_auth": False,
    "is_capture": False,
    "is_standalone_payment": True,
    "is_voided": False,
    "is_refunded": False,
    "is_3d_secure": True,
    "integration_id": 4097558,
    "has_parent_transaction": False,
    "order": {"id": 217503754, "merchant_order_id": "not signed"},
    "created_at": "2024-06-13T11:33:44.592345",
    "currency": "EGP",
    "source_data": {"pan": "2346", "type": "card", "sub_type": "MasterCard"},
    "error_occured": False,
    "owner": 302852,
}
# As Paymob's page prints it for that sample.
DOCUMENTED = (
    "1000002024-06-13T11:33:44.592345EGPfalsefalse1920364654097558truefalsefalsefalsetruefalse"
    "217503754302852false2346MasterCardcardtrue"
)


def test_the_signed_values_concatenate_as_paymob_documents():
    assert "".join(processed_hmac_values(SAMPLE)) == DOCUMENTED


def test_the_browser_return_signs_the_same_values_from_its_query():
    query = {
        "amount_cents": "100000",
        "created_at": "2024-06-13T11:33:44.592345",
        "currency": "EGP",
        "error_occured": "false",
        "has_parent_transaction": "false",
        "id": "192036465",
        "integration_id": "4097558",
        "is_3d_secure": "true",
        "is_auth": "false",
        "is_capture": "false",
        "is_refunded": "false",
        "is_standalone_payment": "true",
        "is_voided": "false",
        "order": "217503754",
        "owner": "302852",
        "pending": "false",
        "source_data.pan": "2346",
        "source_data.sub_type": "MasterCard",
        "source_data.type": "card",
        "success": "true",
    }
    assert "".join(response_hmac_values(query)) == DOCUMENTED


def test_null_is_signed_as_nothing():
    values = processed_hmac_values({**SAMPLE, "source_data": {"pan": None}})
    assert "".join(values) == DOCUMENTED.replace("2346MasterCardcard", "")


def test_only_the_hmac_of_those_values_with_the_secret_is_accepted():
    good = hmac.new(b"secret", DOCUMENTED.encode(), hashlib.sha512).hexdigest()
    verify_paymob_hmac(processed_hmac_values(SAMPLE), good.upper(), "secret")
    flipped = good[:-1] + ("1" if good[-1] == "0" else "0")
    for received in (None, "", flipped, "é" * 128):
        with pytest.raises(WebhookRefused):
            verify_paymob_hmac(processed_hmac_values(SAMPLE), received, "secret")
    with pytest.raises(WebhookRefused):
        verify_paymob_hmac(processed_hmac_values({**SAMPLE, "amount_cents": 1}), good, "secret")
