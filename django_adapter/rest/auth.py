"""Bearer-token auth, JSON errors and method dispatch shared by every endpoint.

The API is called by scripts and ``bundle push``/``bundle pull``, never by a
browser form, so its views are CSRF-exempt and every answer -- errors included
-- is JSON ``{"error": code, "reason": "one line"}`` that a client can act on
without parsing text.

Views raise; this module answers.  One mapping covers the whole exception family
(:func:`error_for`): a refused file is a 4xx, which ``bundle push`` never
retries; the server's own trouble is a 5xx, and only the kind a retry can cure
(a busy upload, a database that is down) says so with ``Retry-After``.  A 5xx
that needs a person (wrong settings, a bug) carries ``"retry": false``.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bundlekit.errors import ApiError, BundleError, ConfigError, UnknownSender, WriteFailed
from django_adapter.rest.config import ANONYMOUS, Token, tokens_configured

log = logging.getLogger(__name__)


def error_response(status: int, code: str, reason: str, *, headers=None, **extra) -> JsonResponse:
    response = JsonResponse({"error": code, "reason": reason, **extra}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def token_of(request: HttpRequest, tokens: tuple[Token, ...]) -> Token | None:
    """The configured token the request carries as ``Authorization: Bearer``, or None.

    Every configured token is compared (in constant time) so the answer time
    does not tell which one nearly matched.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    given_b = given.strip().encode()
    found = None
    for token in tokens:
        if hmac.compare_digest(given_b, token.secret.encode()):
            found = token
    return found


def error_for(exc: BundleError) -> ApiError:
    """The answer to an error of the one family, whatever view raised it.

    The file's fault (4xx, final): a sender this server does not accept is 403,
    anything else wrong with the file is 422 with the error's stable ``code``.
    The server's fault (5xx): wrong settings (``retry: false``: a person must fix
    them; the upload is kept), a disk that refuses (503, retried).
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ConfigError):
        log.error("BUNDLEKIT settings problem: %s", exc)
        return ApiError(
            500,
            "server-misconfigured",
            "the server's BUNDLEKIT settings are wrong; its log says what (the upload is kept)",
            retry=False,
        )
    if isinstance(exc, WriteFailed):
        log.error("cannot write: %s", exc)
        return ApiError(
            503, "server-cannot-write", "the server cannot write its files now; retry later",
            headers={"Retry-After": "60"},
        )
    status = 403 if isinstance(exc, UnknownSender) else 422
    return ApiError(status, exc.code, " ".join(exc.reason.split()))


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
            try:
                tokens = tokens_configured()
            except BundleError as exc:
                return _answer(error_for(exc))
            token = token_of(request, tokens) if tokens else ANONYMOUS
            request.bundlekit_token = token
            if token is None:
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
                return _answer(exc)
            except BundleError as exc:
                return _answer(error_for(exc))
            except Exception:  # a bug: JSON all the same, and no point in retrying
                log.exception("internal error while serving %s %s", request.method, request.path)
                return error_response(
                    500, "internal-error",
                    "the server failed on this request (a bug; its log has the details)",
                    retry=False,
                )

        return wrapper

    return decorate


def _answer(exc: ApiError) -> JsonResponse:
    return error_response(exc.status, exc.code, exc.reason, headers=exc.headers, **exc.extra)
