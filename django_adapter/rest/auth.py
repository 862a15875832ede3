"""Bearer-token auth, JSON errors and method dispatch shared by every endpoint.

The API is called by scripts and ``bundle push``/``bundle pull``, never by a
browser form, so its views are CSRF-exempt and every answer -- errors included
-- is JSON ``{"error": code, "reason": "one line"}`` that a client can act on
without parsing text.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bundlekit.errors import BundleError
from django_adapter.rest.config import tokens_configured

log = logging.getLogger(__name__)


class ApiError(Exception):
    """End a request with ``status`` and a JSON error body."""

    def __init__(self, status: int, code: str, reason: str, *, headers=None, **extra):
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason
        self.headers = dict(headers or {})
        self.extra = extra


def error_response(status: int, code: str, reason: str, *, headers=None, **extra) -> JsonResponse:
    response = JsonResponse({"error": code, "reason": reason, **extra}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def token_ok(request: HttpRequest, tokens: tuple[str, ...]) -> bool:
    """Whether the request carries one of ``tokens`` as ``Authorization: Bearer``.

    Every configured token is compared (in constant time) so the answer time
    does not tell which one nearly matched.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    given_b = given.strip().encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given_b, token.encode())
    return found


View = Callable[..., HttpResponse]


def api(*methods: str) -> Callable[[View], View]:
    """Decorate a view: allowed methods, token check, ApiError -> JSON."""
    allowed = {m.upper() for m in methods}
    if "GET" in allowed:
        allowed.add("HEAD")

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            tokens = tokens_configured()
            if tokens and not token_ok(request, tokens):
                return error_response(
                    401,
                    "unauthorized",
                    "a valid bearer token is required (Authorization: Bearer TOKEN)",
                    headers={"WWW-Authenticate": 'Bearer realm="bundlekit"'},
                )
            if request.method not in allowed:
                return error_response(
                    405,
                    "method-not-allowed",
                    f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}",
                    headers={"Allow": ", ".join(sorted(allowed))},
                )
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error_response(
                    exc.status, exc.code, exc.reason, headers=exc.headers, **exc.extra
                )
            except BundleError:  # ConfigError: the settings, not the caller, are wrong
                log.exception("BUNDLEKIT settings problem while serving %s", request.path)
                return error_response(
                    500,
                    "server-misconfigured",
                    "the server's BUNDLEKIT settings are wrong; its log says what",
                )

        return wrapper

    return decorate
