"""What the HTTP starters share: the request path to echo, problem+json answers, and the
one way an unexpected failure is answered (`answers_failures`, on every HTTP function)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlparse

import azure.functions as func

from shared.dependency_failures import classify_failure
from shared.log_fields import log_event
from shared.problems import PROBLEM_JSON, Problem, problem

log = logging.getLogger(__name__)

# Set on a function `answers_failures` wrapped (and copied by the wrappers outside it, which
# use functools.wraps): tests/orchestrators/test_http_failures.py checks every HTTP function.
ANSWERS_FAILURES = "answers_failures_as_problems"

HttpFunction = TypeVar("HttpFunction", bound=Callable[..., Any])


def request_path(req: func.HttpRequest) -> str:
    # The query string may carry the function key: never echo it.
    path: str = urlparse(req.url).path
    return path


def problem_response(answer: Problem, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(answer.text(), status_code=answer.status, mimetype=PROBLEM_JSON,
                             headers=headers)


class CommittedBeforeFailure(Exception):
    """Raised `from` a failure that came after the request's effect was stored: the answer
    tells the caller what is kept (`kept`) and what to do (`advice`), not just to retry."""

    def __init__(self, kept: str, advice: str) -> None:
        super().__init__(kept)
        self.kept = kept
        self.advice = advice


def answers_failures(function: HttpFunction) -> HttpFunction:
    """Put directly on an HTTP function (below its route and binding decorators): an
    exception it raises is answered as problem+json (503 with Retry-After when a
    dependency is down or throttling, else 500 INTERNAL_ERROR) and logged with its
    traceback; the answer names the operation, never the exception's text."""
    operation = function.__name__
    if inspect.iscoroutinefunction(function):
        async_function = cast(Callable[..., Awaitable[func.HttpResponse]], function)

        @functools.wraps(function)
        async def answering(*args: Any, **kwargs: Any) -> func.HttpResponse:
            try:
                return await async_function(*args, **kwargs)
            except Exception as error:
                return failure_response(operation, _request_of(args, kwargs), error)

        setattr(answering, ANSWERS_FAILURES, True)
        return cast(HttpFunction, answering)

    @functools.wraps(function)
    def answering_sync(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            result: func.HttpResponse = function(*args, **kwargs)
            return result
        except Exception as error:
            return failure_response(operation, _request_of(args, kwargs), error)

    setattr(answering_sync, ANSWERS_FAILURES, True)
    return cast(HttpFunction, answering_sync)


def failure_response(operation: str, req: func.HttpRequest | None,
                     error: Exception) -> func.HttpResponse:
    """The problem+json answer to `error`, raised by HTTP function `operation`; the
    traceback goes to the log with the operation and the code."""
    failure = classify_failure(error)
    cause = error.__cause__ if isinstance(error, CommittedBeforeFailure) else error
    log_event(log, "http request failed", level=logging.ERROR, exc_info=error,
              operation=operation, code=failure.code, status=failure.status,
              error_type=type(cause).__name__)
    path = request_path(req) if req is not None else ""
    asked = f"{req.method} {path}" if req is not None else operation
    what = f"{failure.cause} ({type(cause).__name__})"
    if isinstance(error, CommittedBeforeFailure):
        detail = f"{asked} failed after {error.kept}: {what}. {error.advice}"
    elif failure.retry_after is not None:
        detail = f"{asked} failed: {what}. Try again after {failure.retry_after} seconds"
    else:
        detail = f"{asked} failed: {what}. Trying again is unlikely to help"
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    return problem_response(problem(failure.status, failure.code, failure.title, detail, path,
                                    operation=operation), headers=headers)


def _request_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> func.HttpRequest | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, func.HttpRequest):
            return value
    return None
