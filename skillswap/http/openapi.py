"""The OpenAPI 3.1 document, built from the routes and what each handler method declares.

Every operation states itself with `@operation` (skillswap.http.operations): its operationId,
tag, body model, response model and status, other answers and problems. Its query arguments
come from `takes_query`, its security from `@public`, the Idempotency-Key header from
`@idempotent`, and its summary from the method's docstring. Nothing is read from source code.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import tornado.web
from pydantic import BaseModel

from skillswap import __version__
from skillswap.http.base import API_V1_PREFIX, MAX_PAGE, implements
from skillswap.http.operations import TAGS, Operation, declared_operation

METHODS = ("get", "post", "put", "patch", "delete")
_GROUP_RE = re.compile(r"\((?:\?P<(?P<name>\w+)>)?(?P<body>[^()]*)\)")
_CHOICES_RE = re.compile(r"^\w+(?:\|\w+)+$")
_REF = "#/components/schemas/{model}"

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

PROBLEM_DESCRIPTIONS = {
    400: "Invalid input",
    401: "Not signed in, or the token is invalid",
    402: "Not enough points",
    403: "Not allowed",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The body is too large",
    415: "Unsupported media type",
    429: "Too many attempts; see Retry-After",
    503: "A dependency is down, or the feature is not configured",
}

PAGE_PARAMETERS: list[dict[str, Any]] = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
    {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
]  # fmt: skip

IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Same key and body replay the first response; another body is a 409.",
    "schema": {"type": "string", "maxLength": 255},
}

# Every GET that answers 200 sends a (weak) ETag of its body and answers it with a 304.
IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags of answers you hold, or `*`: a 304 without a body while one is current.",
    "schema": {"type": "string"},
}
ETAG: dict[str, Any] = {
    "description": "A weak tag of the body (the same gzipped or not), for If-None-Match",
    "schema": {"type": "string"},
}

RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "description": 'The rate-limit policy of this operation, e.g. `"order";q=30;w=60`'
        " (draft-ietf-httpapi-ratelimit-headers)",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of it, e.g. `"order";r=29;t=2`: r requests within t seconds',
        "schema": {"type": "string"},
    },
}
RETRY_AFTER: dict[str, Any] = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer"},
}


class Components:
    """The schemas the document refers to, each model once under its own name."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}

    def ref(self, model: type[BaseModel], *, mode: str = "validation") -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        schema = _named_by_title(schema)
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        name = model.__name__
        self.schemas.setdefault(name, schema)
        return {"$ref": _REF.format(model=name)}


def _named_by_title(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each definition named by its title where pydantic named it otherwise.

    A generic model nested in another (`Page[TransactionOut]` as a field) is defined by pydantic
    as `Page_TransactionOut_` with the title `TransactionOutPage`, the name the same model gets
    as a response; two components with one title are one model twice to code generators.
    """
    renames = {
        name: definition["title"]
        for name, definition in schema.get("$defs", {}).items()
        if isinstance(definition.get("title"), str)
        and definition["title"] != name
        and definition["title"].isidentifier()
    }
    if not renames:
        return schema
    text = json.dumps(schema)
    for old, new in renames.items():
        text = text.replace(f'"{_REF.format(model=old)}"', f'"{_REF.format(model=new)}"')
    renamed: dict[str, Any] = json.loads(text)
    renamed["$defs"] = {renames.get(k, k): v for k, v in renamed["$defs"].items()}
    return renamed


def _path_and_parameters(pattern: str, arg_names: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path of a route pattern and its path parameters (ids are integers)."""
    path = pattern.rstrip("$").removesuffix("/?")
    parameters: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        index = len(parameters)
        name = match.group("name") or (arg_names[index] if index < len(arg_names) else f"p{index}")
        body = match.group("body")
        schema: dict[str, Any] = {"type": "string"}
        if body == r"\d+":
            schema = {"type": "integer", "minimum": 0}
        elif _CHOICES_RE.match(body):
            schema = {"type": "string", "enum": body.split("|")}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    path = _GROUP_RE.sub(replace, path).replace("\\", "")
    if path.startswith("/api/") and not path.endswith("/"):
        path += "/"
    return path, parameters


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
            **({"description": prop["description"]} if "description" in prop else {}),
            **({"explode": True} if prop.get("type") == "array" else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _problem(status: int | None) -> dict[str, Any]:
    """A problem answer; `None` is the `default` one (any status not listed)."""
    description = (
        PROBLEM_DESCRIPTIONS.get(status, "Any other error") if status else "Any other error"
    )
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _success(model: type[BaseModel] | None, components: Components, status: int) -> dict[str, Any]:
    if status in (301, 302, 303, 307, 308):
        return {"description": "Redirect", "headers": {"Location": {"schema": {"type": "string"}}}}
    answer: dict[str, Any] = {"description": "Success" if status < 300 else "Redirect"}
    if model is not None:
        schema = components.ref(model, mode="serialization")
        answer["content"] = {"application/json": {"schema": schema}}
    if status == 201:
        answer["headers"] = {
            "Location": {"description": "What was created", "schema": {"type": "string"}}
        }
    return answer


def _request_body(declared: Operation, components: Components) -> dict[str, Any] | None:
    if declared.body is not None:
        return {
            "required": True,
            "content": {"application/json": {"schema": components.ref(declared.body)}},
        }
    if declared.upload is not None:
        binary = {"type": "string", "format": "binary"}
        form = {
            "type": "object",
            "required": [declared.upload],
            "properties": {declared.upload: binary},
        }
        return {
            "required": True,
            "content": {"multipart/form-data": {"schema": form}},
        }
    return None


def _responses(declared: Operation, components: Components, *, public: bool) -> dict[str, Any]:
    answers = {declared.status: declared.response, **declared.also}
    responses: dict[str, Any] = {
        str(status): _success(answers[status], components, status) for status in sorted(answers)
    }
    if declared.file is not None:
        binary = {"type": "string", "format": "binary"}
        responses[str(declared.status)]["content"] = {declared.file: {"schema": binary}}
    # Every operation refuses query arguments it does not declare with a 400 (and bad input).
    problems = {400, *declared.problems}
    if not public:
        problems.add(401)
    for status in sorted(problems):
        responses[str(status)] = _problem(status)
    responses["default"] = _problem(None)
    return responses


def _declare_rate_limit(responses: dict[str, Any]) -> None:
    """A limited operation (`limited`): the RateLimit fields on every answer, and its 429."""
    responses.setdefault("429", _problem(429))
    for status, answer in responses.items():
        headers = {**answer.get("headers", {}), **RATE_LIMIT_HEADERS}
        if status == "429":
            headers["Retry-After"] = RETRY_AFTER
        answer["headers"] = headers


def _declare_conditional_read(described: dict[str, Any]) -> None:
    """A GET answering 200: If-None-Match, the ETag on its 200 and the 304 it may give."""
    responses = described["responses"]
    if "200" not in responses:
        return
    described["parameters"] = [*described["parameters"], IF_NONE_MATCH]
    responses["200"]["headers"] = {**responses["200"].get("headers", {}), "ETag": ETAG}
    not_modified = {
        "description": "Not Modified: the ETag sent in If-None-Match is still current (no body)",
        "headers": {"ETag": ETAG},
    }
    described["responses"] = {
        **{status: answer for status, answer in responses.items() if status < "300"},
        "304": not_modified,
        **{status: answer for status, answer in responses.items() if status >= "300"},
    }


def describe_operation(
    method: Any, path_parameters: list[dict[str, Any]], components: Components
) -> dict[str, Any]:
    """One operation object from what the handler method declares."""
    declared = declared_operation(method)
    if declared is None:
        raise TypeError(f"{method.__qualname__} declares no @operation")
    public = getattr(method, "public", False)
    query_model: type[BaseModel] | None = getattr(method, "query_model", None)
    doc = inspect.getdoc(inspect.unwrap(method)) or ""
    lines = doc.splitlines()
    parameters = list(path_parameters)
    if query_model is not None:
        parameters += _query_parameters(query_model)
    if declared.paged:
        parameters += PAGE_PARAMETERS
    if getattr(method, "idempotent", False):
        parameters.append(IDEMPOTENCY_KEY)
    described: dict[str, Any] = {
        "tags": [declared.tag],
        "summary": lines[0] if lines else declared.operation_id,
        "operationId": declared.operation_id,
        "parameters": parameters,
    }
    if len(lines) > 1:
        described["description"] = "\n".join(lines[1:]).strip()
    request_body = _request_body(declared, components)
    if request_body is not None:
        described["requestBody"] = request_body
    described["responses"] = _responses(declared, components, public=public)
    if getattr(method, "rate_limit", None):
        _declare_rate_limit(described["responses"])
    if public:
        described["security"] = []
    return described


def documented_routes(
    app: tornado.web.Application,
) -> list[tuple[str, list[dict[str, Any]], str, Any]]:
    """(path, path parameters, verb, method) of every operation the document describes."""
    found = []
    for rule in app.default_router.rules[0].target.rules:
        handler = rule.target
        pattern = getattr(rule.matcher, "regex", None)
        if (
            not (isinstance(handler, type) and issubclass(handler, tornado.web.RequestHandler))
            or pattern is None
            or getattr(handler, "openapi_exclude", False)
        ):
            continue
        for verb in METHODS:
            if not implements(handler, verb):
                continue
            method = getattr(handler, verb)
            arg_names = [
                p for p in inspect.signature(inspect.unwrap(method)).parameters if p != "self"
            ]
            path, parameters = _path_and_parameters(pattern.pattern, arg_names)
            if path.startswith(API_V1_PREFIX):
                continue  # the same operation under its alias (see the description)
            if path.startswith("/api/") or path in {"/healthz", "/readyz"}:
                found.append((path, parameters, verb, method))
    return found


def build_openapi(app: tornado.web.Application, *, server_url: str | None = None) -> dict[str, Any]:
    """Describe every REST endpoint of `app` as an OpenAPI 3.1 document."""
    components = Components()
    paths: dict[str, dict[str, Any]] = {}
    for path, parameters, verb, method in documented_routes(app):
        described = describe_operation(method, parameters, components)
        if verb == "get":
            _declare_conditional_read(described)
        paths.setdefault(path, {})[verb] = described
    tag_order = list(TAGS)

    def place(item: tuple[str, dict[str, Any]]) -> tuple[int, str]:
        path, operations = item
        first = next(iter(operations.values()))
        return tag_order.index(first["tags"][0]), path

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "SkillSwap API",
            "version": __version__,
            "description": (
                "Peer-to-peer skill exchange: accounts, skills, points in escrow, chat, payments. "
                "Errors are application/problem+json; send Accept-Language: ar for Arabic. "
                "Every /api/ path is also served under /api/v1/ (the same API: /api/v1/skills/ "
                "is /api/skills/); links in answers keep the prefix of the request. Reads send a "
                "weak ETag and answer If-None-Match with 304; answers are gzipped for clients "
                "that send Accept-Encoding: gzip."
            ),
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": dict(sorted(paths.items(), key=place)),
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
