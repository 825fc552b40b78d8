"""A client generated from the published OpenAPI document works against the running app.

`openapi-python-client` turns the document into a typed package (one function per
operationId, one attrs class per schema); the happy path below uses only that package: sign
up, list a skill in a default category, find it in the listing, and order it as another user.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.factories import unique_name, verify_email

PACKAGE = "skill_swap_api_client"  # from the document's title, "SkillSwap API"
GENERATOR = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))


@pytest.fixture
def generated(api: Any, tmp_path: Path) -> Iterator[Any]:
    """A function `load(document)` that generates the client into tmp_path and imports it."""

    def load(document: dict[str, Any]) -> ModuleType:
        assert GENERATOR, "openapi-python-client is in the dev extra"
        schema = tmp_path / "schema.json"
        schema.write_text(json.dumps(document))
        # Downloads (a data export's zip) are files to the client, as octet-stream would be.
        config = tmp_path / "generator.json"
        config.write_text(
            json.dumps({"content_type_overrides": {"application/zip": "application/octet-stream"}})
        )
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        finished = subprocess.run(
            [
                GENERATOR,
                "generate",
                "--path",
                str(schema),
                "--output-path",
                str(tmp_path / "client"),
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr
        # Every operation and schema was generated: the tool warns about any it skipped.
        assert "Warning" not in finished.stdout + finished.stderr, finished.stdout
        sys.path.insert(0, str(tmp_path / "client"))
        return importlib.import_module(PACKAGE)

    yield load
    sys.path[:] = [entry for entry in sys.path if not entry.startswith(str(tmp_path))]
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


async def test_a_generated_client_signs_up_lists_a_skill_and_orders_it(
    api, deps, server, generated
):
    document = (await api.get("/api/schema/")).json()
    generated(document)
    from skill_swap_api_client import AuthenticatedClient, Client  # type: ignore[import-not-found]
    from skill_swap_api_client.api.accounts import register  # type: ignore[import-not-found]
    from skill_swap_api_client.api.orders import place_order  # type: ignore[import-not-found]
    from skill_swap_api_client.api.skills import (  # type: ignore[import-not-found]
        create_skill,
        list_categories,
        list_skills,
    )
    from skill_swap_api_client.models import (  # type: ignore[import-not-found]
        OrderOut,
        PlaceOrderBody,
        RegisterBody,
        SignedIn,
        SkillBody,
        SkillOut,
        SkillOutPage,
    )

    anonymous = Client(base_url=server)

    async def sign_up() -> SignedIn:
        name = unique_name("gen")
        body = RegisterBody(email=f"{name}@example.com", username=name, password="correct horse")
        signed_in = await register.asyncio(client=anonymous, body=body)
        assert isinstance(signed_in, SignedIn), signed_in
        assert signed_in.user.username == name and signed_in.token_type == "Bearer"
        return signed_in

    seller = await sign_up()
    as_seller = AuthenticatedClient(base_url=server, token=seller.access)

    categories = await list_categories.asyncio(client=anonymous)
    programming = next(c for c in categories.results if c.slug == "programming")

    skill = await create_skill.asyncio(
        client=as_seller,
        body=SkillBody(
            category_id=programming.id,
            price_points=15,
            title_en="Python code review",
            description_en="A careful review of one pull request.",
        ),
    )
    assert isinstance(skill, SkillOut), skill
    assert (skill.title, skill.price_points, skill.status) == ("Python code review", 15, "active")
    assert (skill.owner.id, skill.category.slug) == (seller.user.id, "programming")

    listed = await list_skills.asyncio(client=anonymous, owner=seller.user.id)
    assert isinstance(listed, SkillOutPage), listed
    assert (listed.count, [s.id for s in listed.results]) == (1, [skill.id])
    assert listed.next_ is None and listed.previous is None  # `next` is a builtin

    buyer = await sign_up()
    await verify_email(api, deps, buyer.user.id)  # with the emailed code, to order
    as_buyer = AuthenticatedClient(base_url=server, token=buyer.access)
    order = await place_order.asyncio(
        client=as_buyer, body=PlaceOrderBody(skill_id=skill.id, requirements="Repo link inside.")
    )
    assert isinstance(order, OrderOut), order
    assert (order.status, order.price_points, order.requirements) == (
        "pending",
        15,
        "Repo link inside.",
    )
    assert (order.buyer.id, order.seller.id, order.skill.id) == (
        buyer.user.id,
        seller.user.id,
        skill.id,
    )
    assert order.roles == ["buyer"]
