"""What the schemathesis run over /api/schema/ (tools/fuzz_api.py, in CI) found, kept fixed."""

from __future__ import annotations

import asyncio

import pytest


@pytest.mark.parametrize(
    "path",
    [
        "/api/payments/1/",
        "/api/points/orders/1/accept/",
        "/api/reports/1/",
        "/api/skills/1/",
        "/api/skills/1/images/",
        "/api/skills/1/images/1/",
        "/api/admin/users/1/",
    ],
)
async def test_options_on_a_path_with_named_parts_is_a_204_not_a_server_error(api, path):
    # Routes with named groups pass their parts as keyword arguments, which OPTIONS refused.
    response = await api.request("OPTIONS", path)
    assert response.status_code == 204, response.text
    assert response.content == b""


async def test_a_package_changed_and_deleted_at_once_is_a_404_for_the_loser_never_a_500(
    api, make_user
):
    # The fuzzer's two workers hit this: the PATCH read the row, the DELETE committed, and the
    # UPDATE then matched nothing (500). The row is now locked when read for a change.
    admin = await make_user(admin=True)
    for round_ in range(8):
        created = await api.post(
            "/api/admin/packages/",
            token=admin.access,
            json={
                "name_en": f"Raced pack {round_}",
                "name_ar": "حزمة",
                "points": 100,
                "price_minor": 499,
                "currency": "USD",
                "prices": [{"currency": "EGP", "amount_minor": 25000}],
            },
        )
        assert created.status_code == 201, created.text
        path = f"/api/admin/packages/{created.json()['id']}/"
        answers = await asyncio.gather(
            api.patch(path, token=admin.access, json={"name_en": "Renamed", "prices": []}),
            api.delete(path, token=admin.access),
            api.delete(path, token=admin.access),
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses in ([200, 204, 404], [204, 404, 404]), [a.text for a in answers]
        assert (await api.get(path, token=admin.access)).status_code == 404
