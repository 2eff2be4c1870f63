"""GET /openapi.json, generated from the routing table and the models it names.

Each row of web.app.ENDPOINTS names its request body, query and answer models (web/inputs.py,
web/representation.py, web/result_document.py) with a line of description per status; this module
turns the rows into an OpenAPI 3.1 document: pydantic writes the schemas, the table adds what it
already knows (the bearer-token requirement and its 401/403/429 answers, the {job_id} parameter).
The routes validate with the same models, so the document and the checks cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import CoreSchema
from starlette.requests import Request
from starlette.responses import Response

from web.inputs import JobPath
from web.representation import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Answer:
    """One documented response of a route: a model for JSON bodies, or a raw schema and media type."""

    description: str
    model: type[BaseModel] | None = None
    schema: Mapping[str, Any] | None = None
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)  # header name -> what it says
    also: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # other media types -> their schema


#: A status's answer: an Answer, or just the description of an error (body: ErrorBody).
Answers = Mapping[int, "Answer | str"]


class _Endpoint(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def protected(self) -> bool: ...
    @property
    def submits(self) -> bool: ...
    @property
    def summary(self) -> str: ...
    @property
    def body(self) -> Mapping[str, type[BaseModel]]: ...
    @property
    def query(self) -> type[BaseModel] | None: ...
    @property
    def answers(self) -> Answers: ...


class _Schemas(GenerateJsonSchema):
    """pydantic's JSON Schema without a title on every field (the property name says it)."""

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


def _models(endpoints: Iterable[_Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model the table names, once, with the mode it is used in (requests are validated,
    answers serialised)."""
    found: dict[type[BaseModel], JsonSchemaMode] = {ErrorBody: "serialization"}
    for e in endpoints:
        for model in e.body.values():
            found.setdefault(model, "validation")
        if e.query is not None:
            found.setdefault(e.query, "validation")
        for answer in e.answers.values():
            if isinstance(answer, Answer) and answer.model is not None:
                found.setdefault(answer.model, "serialization")
    return list(found.items())


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: the null branch of ``X | None`` goes."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}
    return {k: v for k, v in schema.items() if k != "default" or v is not None}


def _parameters(e: _Endpoint, schemas: Mapping[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if "{job_id}" in e.path:
        schema = JobPath.model_json_schema(schema_generator=_Schemas)["properties"]["job_id"]
        parameters.append({"name": "job_id", "in": "path", "required": True, "schema": schema})
    if e.query is not None:
        model_schema = schemas[e.query.__name__]
        required = set(model_schema.get("required", ()))
        for name, schema in model_schema["properties"].items():
            schema = _not_null(dict(schema))
            parameter = {"name": name, "in": "query", "required": name in required, "schema": schema}
            if "description" in schema:
                parameter["description"] = schema.pop("description")
            parameters.append(parameter)
    return parameters


def _response(answer: Answer | str) -> dict[str, Any]:
    if isinstance(answer, str):
        answer = Answer(answer, ErrorBody)
    if answer.model is not None:
        schema: Mapping[str, Any] = _ref(answer.model)
    else:
        schema = answer.schema or {}
    response: dict[str, Any] = {
        "description": answer.description,
        "content": {answer.media_type: {"schema": dict(schema)},
                    **{media: {"schema": dict(other)} for media, other in answer.also.items()}},
    }
    if answer.headers:
        response["headers"] = {
            name: {"schema": {"type": "string"}, "description": what} for name, what in answer.headers.items()
        }
    return response


def _operation(e: _Endpoint, schemas: Mapping[str, Any]) -> dict[str, Any]:
    if not e.answers:
        raise KeyError(f"the routing table does not describe the answers of {e.method} {e.path}")
    operation: dict[str, Any] = {"summary": e.summary, "operationId": _operation_id(e.method, e.path)}
    parameters = _parameters(e, schemas)
    if parameters:
        operation["parameters"] = parameters
    if e.body:
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": _ref(model)} for media, model in e.body.items()},
        }
    answers = dict(e.answers)
    if e.protected:
        answers.setdefault(401, "no token, or an unknown one")
        answers.setdefault(403, "a revoked token, or one without this route's scope")
        if e.submits:
            answers.setdefault(429, "the token's submit rate is used up; see the Retry-After header")
        operation["security"] = [{"bearerAuth": []}]
    else:
        operation["security"] = []
    operation["responses"] = {str(status): _response(answers[status]) for status in sorted(answers)}
    return operation


def build_spec(endpoints: Iterable[_Endpoint]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``endpoints``; KeyError names a route whose answers are not described."""
    endpoints = list(endpoints)
    _, defs = models_json_schema(_models(endpoints), ref_template=REF_TEMPLATE, schema_generator=_Schemas)
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pose-service",
            "version": "1",
            "description": "Jobs that turn videos of people into 2D + 3D body poses. See docs/rest_api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}").replace("-", "_").replace(".", "_") for w in path.split("/") if w]
    return "_".join([method.lower(), *words]) or method.lower()


def render(endpoints: Iterable[_Endpoint]) -> bytes:
    """The document as the bytes /openapi.json serves (built once, at app creation)."""
    return json.dumps(build_spec(endpoints), separators=(",", ":")).encode()


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.openapi_json, media_type="application/json")
