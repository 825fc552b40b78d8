"""Every success answer a test receives is checked against the schema its operation declares.

The handlers answer with dicts from one serialiser per shape; the OpenAPI document declares
each shape as a response model (skillswap.http.schemas) that forbids unknown members. This
check runs on every response of the shared `api` client, so a serialiser and its model cannot
drift apart without a test failing, and a status an operation does not declare fails too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator


@dataclass
class _Operation:
    pattern: re.Pattern[str]
    verb: str
    described: dict[str, Any]


def _path_regex(template: str, parameters: list[dict[str, Any]]) -> re.Pattern[str]:
    kinds = {p["name"]: p["schema"] for p in parameters if p.get("in") == "path"}

    def group(match: re.Match[str]) -> str:
        schema = kinds.get(match.group(1), {})
        if schema.get("type") == "integer":
            return r"\d+"
        if "enum" in schema:
            return "(?:" + "|".join(map(re.escape, schema["enum"])) + ")"
        return "[^/]+"

    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", group, re.escape(template)) + "?$")


@dataclass
class DeclaredAnswers:
    """Checks answers against the document the running server publishes (fetched once)."""

    document: dict[str, Any] | None = None
    operations: list[_Operation] = field(default_factory=list)
    validators: dict[tuple[str, str, int], Draft202012Validator] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)  # operationIds seen answering

    async def load(self, base_url: str) -> dict[str, Any]:
        if self.document is None:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                self.document = (await client.get("/api/schema/")).json()
            for template, item in self.document["paths"].items():
                for verb, described in item.items():
                    regex = _path_regex(template, described.get("parameters", []))
                    self.operations.append(_Operation(regex, verb, described))
        return self.document

    def find(self, verb: str, path: str) -> dict[str, Any] | None:
        for candidate in self.operations:
            if candidate.verb == verb and candidate.pattern.match(path):
                return candidate.described
        return None

    async def check(self, response: httpx.Response) -> None:
        request = response.request
        verb = request.method.lower()
        path = request.url.path
        if response.status_code >= 400 or verb in ("head", "options"):
            return
        document = await self.load(str(request.url.copy_with(path="/", query=None)))
        described = self.find(verb, path)
        if described is None:
            return  # not an API operation (docs pages, media, static files, /)
        status = response.status_code
        name = described["operationId"]
        declared = described["responses"].get(str(status))
        assert declared is not None, f"{name} ({verb.upper()} {path}) answered undeclared {status}"
        self.checked.add(name)
        schema = declared.get("content", {}).get("application/json", {}).get("schema")
        await response.aread()
        if schema is None:
            if declared.get("content"):  # a file (a download), declared as binary
                return
            assert not response.content, f"{name} answered {status} with a body it does not declare"
            return
        key = (verb, described["operationId"], status)
        validator = self.validators.get(key)
        if validator is None:
            validator = Draft202012Validator({**schema, "components": document["components"]})
            self.validators[key] = validator
        errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.path))
        assert not errors, f"{name} answered {status} off its schema: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )


declared_answers = DeclaredAnswers()


async def answers_match_their_declared_schema(response: httpx.Response) -> None:
    """httpx response hook: the answer matches its operation's declared response schema."""
    await declared_answers.check(response)
