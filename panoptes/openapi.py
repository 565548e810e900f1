"""The OpenAPI 3.1 document (``/openapi.json``) and its offline HTML rendering (``/docs``).

Nothing here describes a route by hand: the document is built from the app's URL map and the
operation each view declares (``apidoc.operation``): its query model, body, answers and tag,
with the view's docstring as its summary. Schemas are the pydantic models (and TypedDicts) that
parse the requests and write the answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Protocol

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from markupsafe import Markup, escape
from pydantic import BaseModel, TypeAdapter
from werkzeug.routing import Rule

from . import apidoc
from .apidoc import NO_NUL, Operation
from .ingest.snakemake import hub_version
from .launcher import openapi as launcher_openapi
from .seqera import openapi as seqera_openapi
from .store.ids import WORKFLOW_ID_PATTERN

bp = Blueprint("openapi", __name__)

_REFS = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "status"],
    "properties": {
        "error": {"type": "string", "description": "short machine-readable code"},
        "message": {"type": "string", "description": "what went wrong, for a person"},
        "status": {"type": "integer"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}
# Path parameters, by name: the same name means the same thing on every route.
PATH_PARAMETERS: dict[str, tuple[str, dict[str, Any]]] = {
    "workflow_id": (
        "the run's id (as returned at creation)",
        {"type": "string", "pattern": f"^{WORKFLOW_ID_PATTERN}$"},
    ),
    "job_id": ("Snakemake jobid, Nextflow taskId, or the job id sent", {"type": "string"}),
}
_METHOD_ORDER = ("get", "post", "put", "patch", "delete")
OTHER_TAG = "other"


class _Components:
    """The schemas the document refers to, collected as operations name them."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def add(self, schema: apidoc.Schema, mode: str) -> dict[str, Any]:
        """A reference to a model's schema (input models in validation mode, answers as
        serialised), or the schema given as a dict."""
        if isinstance(schema, dict):
            return schema
        name = schema.__name__
        if name not in self.schemas:
            self.schemas[name] = self._take_defs(self._schema_of(schema, mode))
        return {"$ref": _REFS.format(model=name)}

    @staticmethod
    def _schema_of(schema: type, mode: Any) -> dict[str, Any]:
        if issubclass(schema, BaseModel):
            return schema.model_json_schema(ref_template=_REFS, mode=mode)
        return TypeAdapter(schema).json_schema(ref_template=_REFS, mode=mode)

    def _take_defs(self, schema: dict[str, Any]) -> dict[str, Any]:
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        return schema

    def query_parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        """One parameter per field of a query model; list fields take comma-separated
        values."""
        schema = self._take_defs(model.model_json_schema(ref_template=_REFS))
        required = set(schema.get("required", []))
        parameters = []
        for name, prop in schema.get("properties", {}).items():
            prop = _not_null(prop)
            description = prop.pop("description", "")
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": description,
                "schema": _no_nul(prop),
            }
            if prop.get("type") == "array":
                parameter.update(style="form", explode=False)
            parameters.append(parameter)
        return parameters


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema without its ``null`` (absent is the null)."""
    prop = {key: value for key, value in prop.items() if key != "title"}
    options = [option for option in prop.pop("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        prop = {**options[0], **prop}
    elif options:
        prop["anyOf"] = options
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def _no_nul(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
        return {**schema, "pattern": NO_NUL}
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return {**schema, "items": _no_nul(schema["items"])}
    return schema


def _openapi_path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)


def _path_parameters(rule: Rule) -> list[dict[str, Any]]:
    names = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule.rule)
    parameters = []
    for name in names:
        description, schema = PATH_PARAMETERS.get(name, (name, {"type": "string"}))
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": _no_nul(schema),
            }
        )
    return parameters


def _operation(
    rule: Rule, method: str, declared: Operation | None, components: _Components
) -> dict[str, Any]:
    operation_id = f"{rule.endpoint.replace('.', '_')}_{method}"
    parameters = _path_parameters(rule)
    if declared is None:  # a route that declared nothing: a test makes sure there is none
        return {
            "tags": [OTHER_TAG],
            "operationId": operation_id,
            "summary": rule.endpoint,
            **({"parameters": parameters} if parameters else {}),
            "responses": {"200": {"description": "OK"}},
        }
    entry: dict[str, Any] = {
        "tags": [declared.tag],
        "operationId": operation_id,
        "summary": declared.summary,
    }
    if declared.description:
        entry["description"] = declared.description
    if declared.query is not None:
        parameters += components.query_parameters(declared.query)
    if parameters:
        entry["parameters"] = parameters
    if declared.body is not None and method != "get":
        schema = components.add(declared.body.schema, "validation")
        entry["requestBody"] = {
            "required": declared.body.required,
            "content": {media: {"schema": schema} for media in declared.body.media},
        }
    responses: dict[str, Any] = {}
    for status, answer in sorted(declared.responses.items()):
        described: dict[str, Any] = {"description": answer.description or _phrase(status)}
        if answer.media is not None:
            schema = {} if answer.schema is None else components.add(answer.schema, "serialization")
            described["content"] = {answer.media: {"schema": schema}}
        responses[str(status)] = described
    entry["responses"] = responses
    if declared.public:
        entry["security"] = []
    return entry


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


class _Described(Protocol):
    def paths(self) -> dict[str, Any]: ...

    def schemas(self) -> dict[str, Any]: ...


# Blueprints whose routes a module of their own describes (not yet declared per view with
# apidoc.operation): the launcher's API and pages.
DESCRIBED_BY_MODULE: dict[str, _Described] = {
    "launches": launcher_openapi,
    "launch_ui": launcher_openapi,
    "seqera": seqera_openapi.Described(),
    "seqera_launch": seqera_openapi.Described(),
}


def document(app: Flask | None = None) -> dict[str, Any]:
    """The OpenAPI document of every route the app serves (default: the current app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():  # in the order the routes were registered
        if rule.endpoint == "static" or rule.endpoint.split(".")[0] in DESCRIBED_BY_MODULE:
            continue
        declared = apidoc.declared(app.view_functions[rule.endpoint])
        operations = paths.setdefault(_openapi_path(rule), {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations[method.lower()] = _operation(rule, method.lower(), declared, components)
    for module in {type(m): m for m in DESCRIBED_BY_MODULE.values()}.values():
        for path, operations in module.paths().items():
            for method, operation in operations.items():
                slug = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")
                operation.setdefault("operationId", f"{method}_{slug}")
            paths.setdefault(path, {}).update(operations)
        components.schemas.update(module.schemas())
    for path, operations in paths.items():
        paths[path] = dict(sorted(operations.items(), key=lambda i: _METHOD_ORDER.index(i[0])))
    security_schemes = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a token from `panoptes token create` or PANOPTES_TOKEN",
        },
        "nextflowBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "user `@token`, password the token (Nextflow)",
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "panoptes",
            "version": hub_version(),
            "description": "Live monitoring hub for Snakemake, Nextflow and any other engine "
            "(the generic event API).",
        },
        "tags": [{"name": name, "description": text} for name, text in apidoc.TAGS.items()],
        "paths": paths,
        "components": {"schemas": components.schemas, "securitySchemes": security_schemes},
        # Only enforced once a token exists or PANOPTES_TOKEN is set.
        "security": [{"bearer": []}, {"nextflowBasic": []}, {}],
    }


# -- /docs -----------------------------------------------------------------------------------


def _schema_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_html(schema: Any) -> Markup:
    """A JSON schema as a short type, with links to named schemas: ``string``,
    ``array of WorkflowSummary``, ``integer | null``, ``one of: Running, Done``."""
    if not isinstance(schema, dict) or not schema:
        return Markup("any")
    if "$ref" in schema:
        name = _schema_name(schema["$ref"])
        return Markup('<a href="#schema-{0}"><code>{0}</code></a>').format(name)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return Markup(" | ").join(type_html(option) for option in schema[key])
    if "enum" in schema:
        values = Markup(", ").join(Markup("<code>{}</code>").format(v) for v in schema["enum"])
        return Markup("one of: ") + values
    if "const" in schema:
        return Markup("<code>{}</code>").format(schema["const"])
    if "type" not in schema:
        return Markup("any") if "properties" not in schema else Markup("object")
    kind = schema["type"]
    if isinstance(kind, list):
        return Markup(" | ").join(escape(k) for k in kind)
    if kind == "array":
        return Markup("array of ") + type_html(schema.get("items"))
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        if isinstance(extra, dict) and extra:
            return Markup("object of ") + type_html(extra)
    text = escape(kind)
    if "format" in schema:
        text += Markup(" <small>({})</small>").format(schema["format"])
    return Markup(text)


def constraints(schema: Any) -> str:
    """A schema's limits for people: ``pattern``, bounds, lengths, default."""
    if not isinstance(schema, dict):
        return ""
    words = {
        "pattern": "matches",
        "minimum": "at least",
        "maximum": "at most",
        "minLength": "min. length",
        "maxLength": "max. length",
        "minItems": "min. items",
        "maxItems": "max. items",
        "default": "default",
    }
    found = [
        f"{label} {schema[key]}"
        for key, label in words.items()
        if key in schema
        and not (key == "pattern" and schema[key] == NO_NUL)
        and not (key == "default" and schema[key] in ("", None))
    ]
    return "; ".join(found)


def properties(schema: Any) -> Iterator[dict[str, Any]]:
    """The rows of an object schema's table: name, type, required, description."""
    if not isinstance(schema, dict):
        return
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        yield {
            "name": name,
            "type": type_html(prop),
            "required": name in required,
            "description": prop.get("description", ""),
            "constraints": constraints(_not_null(prop)),
        }


def _sections(spec: dict[str, Any], app: Flask) -> list[dict[str, Any]]:
    """Operations grouped by tag, in the order of the document's tags (the read API first),
    then as the app registered them."""
    order: dict[str, int] = {}
    for rule in app.url_map.iter_rules():
        for method in _METHOD_ORDER:
            order.setdefault(f"{rule.endpoint.replace('.', '_')}_{method}", len(order))
    sections: dict[str, dict[str, Any]] = {
        tag["name"]: {"name": tag["name"], "description": tag["description"], "operations": []}
        for tag in spec["tags"]
    }
    found = [
        {"method": method, "path": path, "id": operation["operationId"], **operation}
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]
    for operation in sorted(found, key=lambda op: order.get(op["id"], len(order))):
        tag = operation["tags"][0]
        section = sections.setdefault(tag, {"name": tag, "description": "", "operations": []})
        section["operations"].append(operation)
    return [section for section in sections.values() if section["operations"]]


@bp.get("/openapi.json")
@apidoc.operation(
    apidoc.META, responses={200: apidoc.Answer("this document", schema={"type": "object"})}
)
def openapi_json() -> Response:
    """This document."""
    return jsonify(document())


@bp.get("/docs")
@apidoc.operation(apidoc.META, responses={200: apidoc.HTML})
def docs() -> str:
    """This document as a web page (rendered on the server: no script, nothing from a CDN)."""
    spec = document()
    return render_template(
        "docs.html",
        spec=spec,
        sections=_sections(spec, current_app._get_current_object()),  # type: ignore[attr-defined]
        type_html=type_html,
        properties=properties,
        constraints=constraints,
    )
