"""Checks every /v1 request passes before FastAPI reads it: its query and its JSON body.

Two faults the models behind the routes cannot see, checked here once for every route:

- a query parameter holding a control character (``?q=%00``) is refused with 422 naming the
  parameter, as a text field of a body is (``domain.values.control_problem``);
- a JSON body naming a key twice in one object is refused with 422 naming the key, at any
  depth: RFC 7493 (I-JSON) §2.3 requires unique names, and for an audit record what was sent
  must be unambiguous. FastAPI parses bodies with ``json.loads``, which keeps the last value
  silently; the standard library's ``object_pairs_hook`` sees every pair, so the check reads
  the body with it (and leaves any other JSON error to FastAPI's own answer).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams

from domain.errors import Problem, ValidationFailed
from domain.values import control_problem

__all__ = ["CheckedRoute", "query_problems", "repeated_keys"]


class _Object(dict[str, Any]):
    """A JSON object as parsed, with the paths (inside it) of the names it or its members
    repeat."""

    repeated: list[str]


def _repeats_in(value: Any) -> Iterator[str]:
    if isinstance(value, _Object):
        yield from value.repeated
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from (f"{index}.{path}" for path in _repeats_in(item))


def _object(pairs: Sequence[tuple[str, Any]]) -> _Object:
    found = _Object()
    found.repeated = []
    for name, value in pairs:
        if name in found and name not in found.repeated:
            found.repeated.append(name)
        found[name] = value
        found.repeated.extend(f"{name}.{path}" for path in _repeats_in(value))
    return found


def repeated_keys(body: bytes) -> list[str]:
    """The dotted paths of the names a JSON text repeats within one object (RFC 7493 §2.3),
    in the order they appear: ``{"a": {"b": 1, "b": 2}}`` -> ``["a.b"]``.

    Raises ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) when ``body`` is
    not JSON at all.
    """
    return list(_repeats_in(json.loads(body, object_pairs_hook=_object)))


def query_problems(query: QueryParams) -> list[Problem]:
    """A problem for each query parameter value holding a control character."""
    problems = []
    for name, value in query.multi_items():
        problem = control_problem(value)
        if problem is not None:
            problems.append(Problem(name, problem))
    return problems


def _is_json(request: Request) -> bool:
    # FastAPI reads a body as JSON when it says so, or says nothing (see fastapi.routing).
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media_type:
        return True
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class CheckedRoute(APIRoute):
    """An APIRoute that refuses, before the handler runs, what :func:`query_problems` and
    :func:`repeated_keys` find (422, ``ValidationFailed``, as problem+json)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def checked(request: Request) -> Response:
            problems = query_problems(request.query_params)
            if problems:
                raise ValidationFailed(problems)
            if request.method in ("POST", "PUT", "PATCH", "DELETE") and _is_json(request):
                body = await request.body()  # kept by the request: FastAPI reads it again
                if body:
                    try:
                        repeated = repeated_keys(body)
                    except (ValueError, RecursionError):
                        repeated = []  # not JSON (or too deep): FastAPI answers that itself
                    if repeated:
                        raise ValidationFailed(
                            [
                                Problem(
                                    path,
                                    "is given more than once in one JSON object; send each "
                                    "name once (RFC 7493 §2.3)",
                                )
                                for path in repeated
                            ]
                        )
            return await handle(request)

        return checked
