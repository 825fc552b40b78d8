"""What the schemathesis run over /api/schema/ (tools/fuzz_api.py, in CI) found, kept fixed."""

from __future__ import annotations

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
