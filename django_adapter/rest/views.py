"""The REST endpoints (docs/REST.md): resumable upload, outbox, receipts.

An upload is kept only after its signature has been checked against the
TRUSTED site keys; then it is taken in at once through
:func:`django_adapter.intake.take_in` (route ``rest``; ``REST.IMPORT_ON_UPLOAD``,
the default) or placed into the INBOX the watcher takes it in from.  Either way
it is the same file a USB stick would have carried and the same import path
applies: these views only speak HTTP.  They raise errors of the one family and
:func:`django_adapter.rest.auth.api` answers them.

A token bound to a site's key (``REST.TOKENS``) acts for that site only: it
uploads only bundles that key signed, and sees only the receipts addressed to
it and the outbox bundles sealed for it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse

from bundlekit.errors import BundleError
from bundlekit.inbox import InboxFolder
from bundlekit.naming import bundle_name, is_bundle_name, parse_bundle_name, safe_site
from bundlekit.reader import VerifiedBundle, read_manifest, verify
from bundlekit.receipt import is_receipt_name, receipt_subject
from django_adapter.conf import ConfigError
from django_adapter.rest.auth import ApiError, api
from django_adapter.rest.config import Token, rest_config
from django_adapter.rest.storage import (
    NoSuchUpload,
    Upload,
    file_sha256,
    starting,
    sweep,
    unfinished,
)

log = logging.getLogger(__name__)

ALREADY_HELD = "already held"
IMPORTED = "imported"
QUEUED = "queued"
_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)")
_RECEIPT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,200}\.receipt")


def _token(request: HttpRequest) -> Token:
    return request.bundlekit_token  # set by @api


@api("GET")
def index(request: HttpRequest) -> JsonResponse:
    """What this server offers; lets a client check the URL and its token in one call."""
    cfg = rest_config()
    return JsonResponse(
        {
            "service": "bundlekit",
            "api": 1,
            "upload": "uploads/<sha256>",
            "max_upload_bytes": cfg.max_upload_bytes,
            "max_unfinished_uploads": cfg.max_unfinished_uploads,
            "max_unfinished_bytes": cfg.max_unfinished_bytes,
            "import_on_upload": cfg.import_on_upload,
            "outbox": cfg.outbox is not None,
            "receipts": cfg.receipts_out is not None,
            "site_key": _token(request).fingerprint(),
        }
    )


@api("GET", "PUT", "POST", "DELETE")
def not_found(request: HttpRequest) -> JsonResponse:
    raise ApiError(404, "bad-name", "no such endpoint or file name (see docs/REST.md)")


# ------------------------------------------------------------------------- uploads


def _parse_range(request: HttpRequest) -> tuple[int | None, int, int]:
    """(start or None for ``bytes */N``, byte count of the body, total length)."""
    try:
        count = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "bad-request", "Content-Length is not a number") from None
    header = request.META.get("HTTP_CONTENT_RANGE")
    if header is None:  # the whole file in one request (curl -T)
        return 0, count, count
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        raise ApiError(400, "bad-range", "Content-Range must be 'bytes START-END/TOTAL' or 'bytes */TOTAL'")
    total = int(m[3])
    if m[1] is None:
        if count:
            raise ApiError(400, "bad-range", "'bytes */TOTAL' carries no body")
        return None, 0, total
    start, end = int(m[1]), int(m[2])
    if end < start or end >= total or end - start + 1 != count:
        raise ApiError(400, "bad-range", "Content-Range does not match Content-Length and the total")
    return start, count, total


def _offset_headers(response: HttpResponse, up: Upload) -> HttpResponse:
    state = up.state()
    response["Upload-Offset"] = str(state["offset"])
    if state["length"] is not None:
        response["Upload-Length"] = str(state["length"])
    response["Cache-Control"] = "no-store"
    return response


@api("GET", "PUT", "DELETE")
def upload(request: HttpRequest, upload_id: str) -> HttpResponse:
    cfg = rest_config()
    up = Upload(cfg.upload_dir, upload_id)
    token = _token(request)
    if request.method in ("GET", "HEAD"):
        with up.locked(create=False):  # asking never creates anything
            if token.key is not None and up.meta().get("token") != token.id:
                raise NoSuchUpload()  # a site token sees only its own uploads
            return _offset_headers(JsonResponse(up.state()), up)
    if request.method == "DELETE":
        if up.exists():
            with up.locked(create=False):
                if token.key is None or up.meta().get("token") == token.id:
                    up.remove()  # a site token abandons only its own uploads
        return HttpResponse(status=204)

    start, count, total = _parse_range(request)
    if total > cfg.max_upload_bytes:
        raise ApiError(
            413,
            "too-large",
            f"the file is {total} bytes; this server accepts at most {cfg.max_upload_bytes}",
        )
    if total == 0:
        raise ApiError(422, "not-a-bundle", "the file is empty")
    sweep(cfg.upload_dir)
    if not up.exists():
        with starting(cfg.upload_dir):
            _within_quota(cfg, token, total)
            with up.locked():
                up.start(total, token.id)
    with up.locked():
        previous = up.result()
        if previous is not None:
            _check_site(token, previous[1].get("sender"), previous[1].get("site"))
            return _again(previous, up)
        up.start(total, token.id)
        if start is not None and count:
            up.append(start, request, count)
        if up.offset() < total:
            body = {"status": "incomplete", **up.state()}
            return _offset_headers(JsonResponse(body, status=202), up)
        status, body = _finish(up, cfg, token)
        if status < 300 or status == 409:
            up.save_result(status, body)
        response = JsonResponse(body, status=status)
        return _offset_headers(response, up)


def _within_quota(cfg, token: Token, total: int) -> None:
    """Refuse to start an upload beyond the token's quota of unfinished ones.

    Checked before anything is created; 413 ``upload-quota`` is final for
    ``bundle push`` (finish or ``DELETE`` the unfinished uploads, or wait until
    they are swept, then push again).
    """
    count, held = unfinished(cfg.upload_dir, token.id)
    if count + 1 > cfg.max_unfinished_uploads or held + total > cfg.max_unfinished_bytes:
        raise ApiError(
            413,
            "upload-quota",
            f"this token already has {count} unfinished upload(s) announcing {held} bytes; "
            f"the limit is {cfg.max_unfinished_uploads} uploads and {cfg.max_unfinished_bytes} "
            "bytes: finish or DELETE some first",
            unfinished_uploads=count,
            unfinished_bytes=held,
        )


def _again(previous: tuple[int, dict[str, Any]], up: Upload) -> JsonResponse:
    """A completed upload asked again: the answer a re-upload of a held bundle gets."""
    status, body = previous
    if status == 409:
        return _offset_headers(JsonResponse(body, status=409), up)
    again = {k: body[k] for k in ("file_name", "bundle_id", "site", "sender", "seq", "digest") if k in body}
    # What happened when it first arrived (its import report), kept apart so
    # nobody reads "applied" as "applied again".
    first = {k: body[k] for k in ("status", "report") if k in body}
    again.update(status=ALREADY_HELD, first_answer=first, upload=up.state())
    return _offset_headers(JsonResponse(again, status=200), up)


def _finish(up: Upload, cfg, token: Token) -> tuple[int, dict[str, Any]]:
    """Verify the complete file, then take it in or queue it; the (status, JSON) to answer.

    A refused file is removed and the error raised (a 4xx for the client); a
    wrong configuration or a database that is down keeps the verified file, so
    the next request for this upload takes it in without sending it again.
    """
    try:
        path = up.named_file()
        if path is None:
            up.check_digest()
            if cfg.trusted is None:
                up.remove()
                raise ApiError(
                    403,
                    "no-trusted-senders",
                    "this server trusts no site keys (BUNDLEKIT['TRUSTED'] is empty); nothing is accepted",
                )
            vb = _verify(up, up.data, cfg, token)
            m = vb.manifest
            path = up.name_file(bundle_name(m.sender.site, m.seq, vb.digest))
        else:  # verified before, then the answer was lost (import failed, server restarted)
            vb = _verify(up, path, cfg, token)
        if cfg.import_on_upload:
            return _take_in(up, path, vb, cfg)
        return _queue(up, path, vb, cfg)
    except ConfigError:
        raise  # the server's fault: the upload is kept
    except ApiError:
        raise
    except BundleError:
        up.remove()
        raise


def _verify(up: Upload, path: Path, cfg, token: Token) -> VerifiedBundle:
    vb = verify(path, trusted=cfg.trusted, revoked=cfg.revoked)
    try:
        _check_site(token, vb.manifest.sender.fingerprint, vb.manifest.sender.site)
    except ApiError:
        up.remove()
        raise
    return vb


def _check_site(token: Token, sender: str | None, site: str | None) -> None:
    """A site-bound token may only hand in (or ask about) its own key's bundles."""
    bound = token.fingerprint()
    if bound is not None and sender != bound:
        raise ApiError(
            403,
            "wrong-site",
            f"this token acts for the key {bound} only; the bundle is signed by "
            f"{site!r} ({sender})",
        )


def _about(vb: VerifiedBundle, name: str, up: Upload) -> dict[str, Any]:
    m = vb.manifest
    return {
        "file_name": name,
        "bundle_id": str(m.bundle_id),
        "site": m.sender.site,
        "sender": m.sender.fingerprint,
        "seq": m.seq,
        "digest": vb.digest.hex(),
        "upload": up.state(),
    }


def _take_in(up: Upload, path: Path, vb: VerifiedBundle, cfg) -> tuple[int, dict]:
    """The ``rest`` face of the one import path: take in, keep, forward, receipt."""
    from django.db import DatabaseError

    from django_adapter.importer import DUPLICATE
    from django_adapter.intake import take_in
    from django_adapter.models import BundleStatus

    try:
        report = take_in(path, route="rest", config=cfg.workflow, staged=True, receipt=True)
    except (DatabaseError, OSError) as exc:  # the data is fine; keep it for a retry
        log.exception("importing upload %s failed; it is kept for a retry", up.id)
        raise ApiError(
            503,
            "import-failed",
            f"the server could not import it now ({type(exc).__name__}); retry later",
            headers={"Retry-After": "30"},
        ) from None
    body = _about(vb, path.name, up)
    body["report"] = _public_report(report)
    if report.status == DUPLICATE:
        body["status"] = ALREADY_HELD
        return 200, body
    if report.status == BundleStatus.FORK:
        reason = "; ".join(report.messages) or "fork of the sender's chain"
        body.update(error="fork", reason=reason)
        return 409, body
    body["receipts"] = [os.path.basename(p) for p in report.receipts_written]
    body["status"] = IMPORTED
    return 201, body


def _public_report(report) -> dict[str, Any]:
    """The import report without this server's paths."""
    data = report.to_dict()
    data["file"] = os.path.basename(data.get("file") or "")
    data["forwarded"] = bool(data.get("forwarded"))
    data["kept"] = bool(data.get("kept"))
    data["receipts_written"] = [os.path.basename(p) for p in data.get("receipts_written") or ()]
    return data


def _queue(up: Upload, path: Path, vb: VerifiedBundle, cfg) -> tuple[int, dict]:
    """``IMPORT_ON_UPLOAD`` off: place the file in the inbox for the watcher."""
    from django_adapter.intake import ledger_verdict

    inbox = InboxFolder(cfg.inbox)
    body = _about(vb, path.name, up)
    verdict, reason = ledger_verdict(vb.manifest, vb.digest, cfg.workflow)
    if verdict == "fork":
        from django_adapter.workflow import QuarantinedFork

        inbox.reject(path, QuarantinedFork(reason))
        body.update(error="fork", reason=reason)
        return 409, body
    if verdict == "held" or inbox.holds(path.name):
        path.unlink(missing_ok=True)
        body["status"] = ALREADY_HELD
        return 200, body
    try:
        inbox.place(path)
    except FileExistsError:  # arrived by another route a moment ago
        path.unlink(missing_ok=True)
        body["status"] = ALREADY_HELD
        return 200, body
    body["status"] = QUEUED
    return 201, body


# ------------------------------------------------------------------------- files


def _folder(folder: Path | None, what: str) -> Path:
    if folder is None:
        raise ApiError(404, "not-configured", f"this server has no {what} folder")
    return folder


def _listing(folder: Path, valid: Callable[[str], bool], mine=None) -> list[dict[str, Any]]:
    items = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return items
    for entry in entries:
        if not valid(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if mine is not None and not mine(Path(entry.path)):
                continue
            size = entry.stat(follow_symlinks=False).st_size
            digest = file_sha256(Path(entry.path))
        except OSError:  # taken away between listing and reading
            continue
        items.append({"name": entry.name, "size": size, "sha256": digest})
    return items


def _serve(folder: Path, name: str, valid, mine=None) -> FileResponse:
    """Stream one file; ``name`` must match our own naming pattern, never a path."""
    if not valid(name) or os.path.basename(name) != name:
        raise ApiError(404, "bad-name", "not a file name this server hands out")
    path = folder / name
    missing = ApiError(404, "no-such-file", f"{name} is not here (already taken or pruned?)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise missing from None
    except OSError as exc:
        raise ApiError(404, "no-such-file", f"{name} cannot be read ({exc.strerror})") from None
    f = os.fdopen(fd, "rb")
    if mine is not None and not mine(path):
        f.close()
        raise missing  # another site's file: as if it were not here
    size = os.fstat(fd).st_size
    digest = file_sha256(path)
    response = FileResponse(f, as_attachment=True, filename=name, content_type="application/octet-stream")
    response["Content-Length"] = str(size)
    response["X-Content-SHA256"] = digest
    response["Repr-Digest"] = "sha-256=:" + base64.b64encode(bytes.fromhex(digest)).decode() + ":"
    response["Cache-Control"] = "no-store"
    return response


def _receipt_name(name: str) -> bool:
    return is_receipt_name(name) and _RECEIPT_NAME.fullmatch(name) is not None


def _sealed_for(token: Token):
    """For a site-bound token: is this outbox bundle sealed for its key? (None: all are)."""
    bound = token.fingerprint()
    if bound is None:
        return None

    def mine(path: Path) -> bool:
        try:
            return bound in read_manifest(path).recipients
        except BundleError:
            return False

    return mine


def _addressed_to(token: Token):
    """For a site-bound token: is this receipt addressed to its key? (None: all are)."""
    bound = token.fingerprint()
    if bound is None:
        return None

    def mine(path: Path) -> bool:
        try:
            return receipt_subject(path)[1] == bound
        except BundleError:
            return False

    return mine


@api("GET")
def outbox_list(request: HttpRequest) -> JsonResponse:
    folder = _folder(rest_config().outbox, "outbox")
    items = _listing(folder, is_bundle_name, _sealed_for(_token(request)))
    for item in items:
        site, seq, _ = parse_bundle_name(item["name"])
        item.update(site=site, seq=seq)
    return JsonResponse({"bundles": items})


@api("GET")
def outbox_file(request: HttpRequest, name: str) -> FileResponse:
    return _serve(_folder(rest_config().outbox, "outbox"), name, is_bundle_name,
                  _sealed_for(_token(request)))


@api("GET")
def receipts_list(request: HttpRequest) -> JsonResponse:
    """``?site=NAME``: only receipts addressed to that site (by their file name).

    A site-bound token sees only the receipts addressed to its key, whatever it asks.
    """
    folder = _folder(rest_config().receipts_out, "receipts")
    valid = _receipt_name
    site = request.GET.get("site")
    if site:
        tail = re.compile(rf"-{re.escape(safe_site(site))}-[0-9]{{8}}t[0-9]{{6}}z-[0-9a-f]{{8}}\.receipt")

        def valid(name: str) -> bool:
            return _receipt_name(name) and tail.search(name) is not None

    return JsonResponse({"receipts": _listing(folder, valid, _addressed_to(_token(request)))})


@api("GET")
def receipt_file(request: HttpRequest, name: str) -> FileResponse:
    return _serve(_folder(rest_config().receipts_out, "receipts"), name, _receipt_name,
                  _addressed_to(_token(request)))
