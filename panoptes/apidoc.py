"""Each view declares its operation once, beside its route: what it reads from the query string
and the body, and what it answers. The view parses its input with that declaration, and
``openapi.py`` builds the OpenAPI document from the same declarations, so no route is described
twice.

    @bp.get("/workflows")
    @apidoc.operation(READ, query=WorkflowQuery, responses={200: WorkflowList, 400: "bad query"})
    def list_workflows(query: WorkflowQuery) -> Response: ...

A view that takes a ``query`` (or ``body``) argument gets the query string (or the body) parsed
into the declared pydantic model; a refusal is the hub's own 400 (``errors.ApiError``), never a
library's 422. A view without that argument parses for itself and the declaration only
describes it: the engines' own protocols store bodies as received and accept every well-formed
one, so their bodies are decoded by the view, leniently.

The summary and description of an operation are its view's docstring.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Request, current_app, request
from pydantic import BaseModel, ValidationError

from .errors import ApiError
from .ingest.body import json_object

ModelT = TypeVar("ModelT", bound=BaseModel)
ViewT = TypeVar("ViewT", bound=Callable[..., Any])
# A pydantic model, a TypedDict (both give their JSON schema), or a JSON schema as a dict.
Schema = type | dict[str, Any]

# Tags, in the order the documentation lists them: what people read first.
TAGS: dict[str, str] = {
    "read API": "Runs and jobs of every engine, as JSON.",
    "management": "Rename, cancel and delete runs.",
    "any engine": "The generic event API (docs/EVENTS.md): any engine reports its runs here.",
    "snakemake": "The panoptes protocol of Snakemake 7/8 (--wms-monitor) and our Snakemake 9 "
    "logger plugin's batches.",
    "nextflow": "The Tower trace protocol of Nextflow (-with-tower), under / and /api.",
    "dashboard": "Server-rendered pages, their forms and their live stream.",
    "meta": "This document, and how far the runs lag the stored events.",
    "operations": "Health checks and metrics.",
    "launcher": "Launch, queue, cancel and follow pipelines (a token with the launch right).",
    "seqera": "The Seqera Platform API, self-hosted (TOWER_API_ENDPOINT=http://hub/seqera).",
}
READ, MANAGE, ANY_ENGINE, SNAKEMAKE, NEXTFLOW, DASHBOARD, META, OPERATIONS, LAUNCHER, SEQERA = TAGS

# No text the hub takes may contain NUL (it answers 400 to one in the URL).
NO_NUL = "^[^\\u0000]*$"


@dataclass(frozen=True, slots=True)
class Body:
    """A request body: its schema, how it may be sent, and how the view decodes it when the
    declaration parses it for the view (a JSON object, whatever the Content-Type says)."""

    schema: Schema
    media: tuple[str, ...] = ("application/json",)
    required: bool = True
    decode: Callable[[Request], Any] = json_object


@dataclass(frozen=True, slots=True)
class Answer:
    """One response: what it means, its media type (None: no body) and its schema."""

    description: str
    media: str | None = "application/json"
    schema: Schema | None = None


HTML = Answer("HTML page", "text/html", {"type": "string"})


@dataclass(frozen=True, slots=True)
class Operation:
    tag: str
    summary: str
    description: str
    query: type[BaseModel] | None
    body: Body | None
    responses: Mapping[int, Answer]
    public: bool = False  # reachable without a token


def _answer(status: int, declared: Answer | Schema | str) -> Answer:
    if isinstance(declared, Answer):
        return declared
    if isinstance(declared, str):  # an error: the hub's one error body
        return Answer(declared, schema={"$ref": "#/components/schemas/Error"})
    return Answer("OK" if status < 300 else "", schema=declared)


def _docstring(view: Callable[..., Any]) -> tuple[str, str]:
    text = inspect.getdoc(view) or view.__name__.replace("_", " ")
    text = text.replace("``", "`")
    first, _, rest = text.partition("\n\n")
    return " ".join(first.split()), rest.strip()


def parse(model: type[ModelT], data: Any) -> ModelT:
    """``data`` as ``model``, or the hub's 400 naming each field refused. Validators see the
    app's settings as the validation context (``info.context["settings"]``)."""
    try:
        return model.model_validate(data, context={"settings": current_app.config})
    except ValidationError as error:
        raise ApiError.from_validation(error) from None


def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    schema = model.model_json_schema()
    found = set()
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf", [prop])
        if any(option.get("type") == "array" for option in options):
            found.add(name)
    return frozenset(found)


def operation(
    tag: str,
    *,
    responses: Mapping[int, Answer | Schema | str],
    query: type[BaseModel] | None = None,
    body: Body | Schema | None = None,
    public: bool = False,
) -> Callable[[ViewT], ViewT]:
    """Declare a view's operation (see the module's docstring)."""
    if body is not None and not isinstance(body, Body):
        body = Body(body)

    def decorate(view: ViewT) -> ViewT:
        summary, description = _docstring(view)
        declared = Operation(
            tag=tag,
            summary=summary,
            description=description,
            query=query,
            body=body,
            responses={status: _answer(status, a) for status, a in responses.items()},
            public=public,
        )
        accepts = inspect.signature(view).parameters
        query_model = query if query is not None and "query" in accepts else None
        body_model: type[BaseModel] | None = None
        if isinstance(body, Body) and "body" in accepts:
            if not (isinstance(body.schema, type) and issubclass(body.schema, BaseModel)):
                raise TypeError(f"{view.__name__}: only a pydantic model body can be parsed")
            body_model = body.schema
        decode = body.decode if isinstance(body, Body) else json_object
        lists = _list_fields(query_model) if query_model is not None else frozenset()
        if query_model is None and body_model is None:
            view.openapi = declared  # type: ignore[attr-defined]
            return view

        @functools.wraps(view)
        def parsing(*args: Any, **kwargs: Any) -> Any:
            if query_model is not None:
                values: dict[str, Any] = {}
                for key in request.args:
                    if key in lists:
                        raw = request.args.getlist(key)
                        values[key] = [v for r in raw for v in r.split(",") if v.strip()]
                    else:
                        values[key] = request.args.get(key)
                kwargs["query"] = parse(query_model, values)
            if body_model is not None:
                received = decode(request)
                kwargs["body"] = parse(body_model, received)
                if "received" in accepts:
                    kwargs["received"] = received
            return view(*args, **kwargs)

        parsing.openapi = declared  # type: ignore[attr-defined]
        return parsing  # type: ignore[return-value]

    return decorate


def declared(view: Callable[..., Any]) -> Operation | None:
    """The operation a view declared, if any."""
    found = getattr(view, "openapi", None)
    return found if isinstance(found, Operation) else None
