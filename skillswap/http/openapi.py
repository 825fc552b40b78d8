"""The OpenAPI 3.1 document, derived from the routes and the handlers' own validation models.

Nothing is declared twice: each operation's request body and query schema come from the
pydantic models its handler passes to `parse_body` or declares with `takes_query`, its success status from
the `send(..., status=)` call, its security from `@public`, pagination from `page_params()`, and
its summary from the method's docstring. The handler source is read once, when the document
is first built.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from pydantic import BaseModel

from skillswap import __version__
from skillswap.http.base import MAX_PAGE, implements

METHODS = ("get", "post", "put", "patch", "delete")
_GROUP_RE = re.compile(r"\((?:\?P<(?P<name>\w+)>)?[^()]*\)")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; every error response has this shape.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string", "description": "Translated summary"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "Translated explanation"},
        "code": {"type": "string", "description": "Stable machine-readable code"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "object",
            "description": "Per-field messages (validation errors)",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


@dataclass
class _Usage:
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    paginated: bool = False
    statuses: set[int] = field(default_factory=set)
    multipart: bool = False


def _inspect_method(fn: Any) -> _Usage:
    usage = _Usage()
    target = inspect.unwrap(fn)
    usage.query = getattr(fn, "query_model", None)
    try:
        source = textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError):
        return usage
    namespace = getattr(target, "__globals__", {})
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if name == "parse_body" and node.args and isinstance(node.args[0], ast.Name):
            model = namespace.get(node.args[0].id)
            if isinstance(model, type) and issubclass(model, BaseModel):
                usage.body = model
        elif name == "page_params":
            usage.paginated = True
        elif name in {"request_files", "uploaded_file"} or (
            name == "get"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "files"
        ):
            usage.multipart = True
        elif name in {"send", "set_status"}:
            candidates = [k.value for k in node.keywords if k.arg == "status"]
            if name == "set_status" and node.args:
                candidates.append(node.args[0])
            if name == "send" and len(node.args) > 1:
                candidates.append(node.args[1])
            for candidate in candidates:
                if isinstance(candidate, ast.Constant) and isinstance(candidate.value, int):
                    usage.statuses.add(candidate.value)
    return usage


def _openapi_path(pattern: str, param_names: list[str]) -> tuple[str, list[str]]:
    path = pattern.rstrip("$")
    if path.endswith("/?"):
        path = path[:-2]
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name") or (
            param_names[len(names)] if len(names) < len(param_names) else f"p{len(names)}"
        )
        names.append(name)
        return "{" + name + "}"

    path = _GROUP_RE.sub(replace, path).replace("\\", "")
    if path.startswith("/api/") and not path.endswith("/"):
        path += "/"
    return path, names


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def build_openapi(app: tornado.web.Application, *, server_url: str | None = None) -> dict[str, Any]:
    """Describe every REST endpoint of `app` as an OpenAPI 3.1 document."""
    components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, Any] = {}
    rules = app.default_router.rules[0].target.rules
    for rule in rules:
        handler = rule.target
        pattern = getattr(rule.matcher, "regex", None)
        if (
            not (isinstance(handler, type) and issubclass(handler, tornado.web.RequestHandler))
            or pattern is None
        ):
            continue
        if getattr(handler, "openapi_exclude", False):
            continue
        for method_name in METHODS:
            if not implements(handler, method_name):
                continue
            fn = getattr(handler, method_name)
            params = [p for p in inspect.signature(inspect.unwrap(fn)).parameters if p != "self"]
            path, names = _openapi_path(pattern.pattern, params)
            if not path.startswith("/api/") and path not in {"/healthz", "/readyz"}:
                continue
            usage = _inspect_method(fn)
            public = getattr(fn, "public", False)
            doc = inspect.getdoc(inspect.unwrap(fn)) or ""
            tag = path.split("/")[2] if path.startswith("/api/") else "health"
            operation: dict[str, Any] = {
                "tags": [tag],
                "summary": doc.splitlines()[0] if doc else f"{method_name.upper()} {path}",
                "operationId": f"{method_name}_{handler.__name__}",
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in names
                ],
            }
            if doc and len(doc.splitlines()) > 1:
                operation["description"] = "\n".join(doc.splitlines()[1:]).strip()
            if usage.query is not None:
                operation["parameters"] += _query_parameters(usage.query)
            if usage.paginated:
                operation["parameters"] += [
                    {
                        "name": "page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                    },
                    {
                        "name": "page_size",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ]
            if getattr(fn, "idempotent", False):
                operation["parameters"].append(
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Same key and body replay the first response; another body is a 409.",
                        "schema": {"type": "string", "maxLength": 255},
                    }
                )
            if usage.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _schema_ref(usage.body, components)}
                    },
                }
            elif usage.multipart:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": {"type": "object"}}},
                }
            success = min(usage.statuses) if usage.statuses else 200
            ok: dict[str, Any] = {"description": "Success"}
            if success != 204:
                content_schema: dict[str, Any] = {"type": "object"}
                if usage.paginated:
                    content_schema = {"$ref": "#/components/schemas/Page"}
                ok["content"] = {"application/json": {"schema": content_schema}}
            responses: dict[str, Any] = {str(success): ok}
            if usage.body is not None or usage.query is not None or usage.paginated:
                responses["400"] = _error("Invalid input")
            if not public:
                responses["401"] = _error("Not signed in, or the token is invalid")
            if names:
                responses["404"] = _error("Not found")
            responses["default"] = _error("Any other error")
            operation["responses"] = responses
            if public:
                operation["security"] = []
            paths.setdefault(path, {})[method_name] = operation
    components["Page"] = {
        "type": "object",
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer"},
            "next": {"type": ["string", "null"], "format": "uri"},
            "previous": {"type": ["string", "null"], "format": "uri"},
            "results": {"type": "array", "items": {"type": "object"}},
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "SkillSwap API",
            "version": __version__,
            "description": (
                "Peer-to-peer skill exchange: accounts, skills, points in escrow, chat, payments. "
                "Errors are application/problem+json; send Accept-Language: ar for Arabic."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
