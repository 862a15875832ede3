"""The REST endpoints (docs/REST.md): resumable upload, outbox, receipts.

An upload is kept only after its signature has been checked against the
TRUSTED site keys; then it is imported at once through
:func:`django_adapter.importer.import_bundle` (``REST.IMPORT_ON_UPLOAD``, the
default) or moved into the INBOX the watcher imports from.  Either way it is
the same file a USB stick would have carried, and the same dedupe applies.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse

from bundlekit.errors import BundleError, RevokedKey, UnknownSender
from bundlekit.inbox import DONE, PROCESSING, REASON_TXT, REJECTED
from bundlekit.naming import bundle_name, is_bundle_name, parse_bundle_name, safe_site
from bundlekit.reader import VerifiedBundle, verify
from bundlekit.receipt import is_receipt_name
from django_adapter.rest.auth import ApiError, api
from django_adapter.rest.config import RestConfig, rest_config
from django_adapter.rest.storage import Upload, file_sha256, place, sweep

log = logging.getLogger(__name__)

ALREADY_HELD = "already held"
IMPORTED = "imported"
QUEUED = "queued"
_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)")
_RECEIPT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,200}\.receipt")


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
            "import_on_upload": cfg.import_on_upload,
            "outbox": cfg.outbox is not None,
            "receipts": cfg.receipts_out is not None,
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
    if request.method in ("GET", "HEAD"):
        with up.locked():
            if not up.exists():
                raise ApiError(404, "no-such-upload", "no upload with this id", headers={"Upload-Offset": "0"})
            return _offset_headers(JsonResponse(up.state()), up)
    if request.method == "DELETE":
        with up.locked():
            up.remove()
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
    with up.locked():
        previous = up.result()
        if previous is not None:
            return _again(previous, up)
        up.start(total)
        if start is not None and count:
            up.append(start, request, count)
        if up.offset() < total:
            body = {"status": "incomplete", **up.state()}
            return _offset_headers(JsonResponse(body, status=202), up)
        status, body = _finish(up, cfg)
        if status < 300 or status == 409:
            up.save_result(status, body)
        response = JsonResponse(body, status=status)
        return _offset_headers(response, up)


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


def _http_status(exc: BundleError) -> int:
    return 403 if isinstance(exc, UnknownSender | RevokedKey) else 422


def _finish(up: Upload, cfg: RestConfig) -> tuple[int, dict[str, Any]]:
    """Verify the complete file, then import or queue it; the (status, JSON) to answer."""
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
        try:
            vb = verify(up.data, trusted=cfg.trusted, revoked=cfg.revoked)
        except BundleError as exc:
            up.remove()
            raise ApiError(_http_status(exc), exc.code, exc.reason) from None
        m = vb.manifest
        path = up.name_file(bundle_name(m.sender.site, m.seq, vb.digest))
    else:  # verified before, then the answer was lost (import failed, server restarted)
        try:
            vb = verify(path, trusted=cfg.trusted, revoked=cfg.revoked)
        except BundleError as exc:
            up.remove()
            raise ApiError(_http_status(exc), exc.code, exc.reason) from None
    if cfg.import_on_upload:
        return _import(up, path, vb, cfg)
    return _queue(up, path, vb, cfg)


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


def _held_dir(cfg: RestConfig) -> Path:
    """Where an imported upload is kept: beside the watcher's, when there is an inbox."""
    return (cfg.inbox / DONE) if cfg.inbox is not None else (cfg.upload_dir / DONE)


def _keep(path: Path, folder: Path, name: str, reason: str | None = None) -> None:
    try:
        place(path, folder, name)
    except FileExistsError:
        path.unlink(missing_ok=True)  # the same name holds the same digest prefix
        return
    if reason:
        (folder / (name + REASON_TXT)).write_text(reason + "\n")


#: Import statuses after which the original file is kept and forwarded (as the watcher does).
_HELD = ("applied", "waiting-for-gap")


def _import(up: Upload, path: Path, vb: VerifiedBundle, cfg: RestConfig) -> tuple[int, dict]:
    """The watcher's path for one file: import, forward, write the sender's receipt."""
    from django.db import DatabaseError

    from django_adapter.importer import DUPLICATE
    from django_adapter.models import BundleStatus
    from django_adapter.workflow import forward_copy, import_one

    config = cfg.workflow
    try:
        report = import_one(path, config=config)
    except BundleError as exc:  # not a recipient, not sync records, ...
        up.remove()
        raise ApiError(_http_status(exc), exc.code, exc.reason) from None
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
        if config.forward:
            _forward(forward_copy, path, config.forward, body)
        path.unlink(missing_ok=True)
        body["status"] = ALREADY_HELD
        return 200, body
    if report.status == BundleStatus.FORK:
        reason = "; ".join(report.messages) or "fork of the sender's chain"
        _keep(path, (cfg.inbox or cfg.upload_dir) / REJECTED, path.name, reason)
        _receipt(config, report.sender)  # tells the site this bundle was refused
        body.update(error="fork", reason=reason)
        return 409, body
    if config.forward and report.status in _HELD:
        _forward(forward_copy, path, config.forward, body)
    _keep(path, _held_dir(cfg), path.name)
    body["receipts"] = _receipt(config, report.sender)
    body["status"] = IMPORTED
    return 201, body


def _public_report(report) -> dict[str, Any]:
    """The import report without this server's paths."""
    data = report.to_dict()
    data["file"] = os.path.basename(data.get("file") or "")
    data["forwarded"] = bool(data.get("forwarded"))
    return data


def _forward(forward_copy, path: Path, folder: Path, body: dict[str, Any]) -> None:
    try:
        forward_copy(path, folder)
        body["forwarded"] = True
    except (BundleError, OSError):
        log.exception("cannot forward %s to %s", path.name, folder)
        body["forwarded"] = False


def _receipt(config, fingerprint: str) -> list[str]:
    """Write the sender's receipt now, as the watcher does after a pass; names only."""
    if not config.receipts_out or not fingerprint:
        return []
    from django_adapter.receipts import write_receipts

    try:
        return [p.name for p in write_receipts([fingerprint], config=config)]
    except (BundleError, OSError):
        log.exception("cannot write a receipt for %s; the next import writes it", fingerprint)
        return []


def _in_inbox(inbox: Path, name: str) -> bool:
    if (inbox / name).exists() or (inbox / DONE / name).exists():
        return True
    try:
        claims = list(os.scandir(inbox / PROCESSING))
    except FileNotFoundError:
        return False
    return any((Path(c.path) / name).exists() for c in claims)


def _queue(up: Upload, path: Path, vb: VerifiedBundle, cfg: RestConfig) -> tuple[int, dict]:
    from django_adapter.models import BundleStatus, ImportedBundle

    if cfg.inbox is None:
        raise ApiError(
            500, "misconfigured", "REST.IMPORT_ON_UPLOAD is off but BUNDLEKIT['INBOX'] is not set"
        )
    m = vb.manifest
    body = _about(vb, path.name, up)
    known = ImportedBundle.objects.using(cfg.database)
    same = known.filter(bundle_id=str(m.bundle_id)).first()
    rival = (
        known.filter(fingerprint=m.sender.fingerprint, seq=m.seq)
        .exclude(status__in=[BundleStatus.FORK, BundleStatus.FAILED])
        .exclude(bundle_id=str(m.bundle_id))
        .first()
    )
    if (same is not None and same.status == BundleStatus.FORK) or rival is not None:
        reason = f"fork: seq {m.seq} of {m.sender.site} was already received with another digest"
        _keep(path, cfg.inbox / REJECTED, path.name, reason)
        body.update(error="fork", reason=reason)
        return 409, body
    if same is not None or _in_inbox(cfg.inbox, path.name):
        path.unlink(missing_ok=True)
        body["status"] = ALREADY_HELD
        return 200, body
    try:
        place(path, cfg.inbox, path.name)
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


def _listing(folder: Path, valid) -> list[dict[str, Any]]:
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
            size = entry.stat(follow_symlinks=False).st_size
            digest = file_sha256(Path(entry.path))
        except OSError:  # taken away between listing and reading
            continue
        items.append({"name": entry.name, "size": size, "sha256": digest})
    return items


def _serve(folder: Path, name: str, valid) -> FileResponse:
    """Stream one file; ``name`` must match our own naming pattern, never a path."""
    if not valid(name) or os.path.basename(name) != name:
        raise ApiError(404, "bad-name", "not a file name this server hands out")
    path = folder / name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise ApiError(404, "no-such-file", f"{name} is not here (already taken or pruned?)") from None
    except OSError as exc:
        raise ApiError(404, "no-such-file", f"{name} cannot be read ({exc.strerror})") from None
    f = os.fdopen(fd, "rb")
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


@api("GET")
def outbox_list(request: HttpRequest) -> JsonResponse:
    folder = _folder(rest_config().outbox, "outbox")
    items = _listing(folder, is_bundle_name)
    for item in items:
        site, seq, _ = parse_bundle_name(item["name"])
        item.update(site=site, seq=seq)
    return JsonResponse({"bundles": items})


@api("GET")
def outbox_file(request: HttpRequest, name: str) -> FileResponse:
    return _serve(_folder(rest_config().outbox, "outbox"), name, is_bundle_name)


@api("GET")
def receipts_list(request: HttpRequest) -> JsonResponse:
    """``?site=NAME``: only receipts addressed to that site (by their file name)."""
    folder = _folder(rest_config().receipts_out, "receipts")
    valid = _receipt_name
    site = request.GET.get("site")
    if site:
        tail = re.compile(rf"-{re.escape(safe_site(site))}-[0-9]{{8}}t[0-9]{{6}}z-[0-9a-f]{{8}}\.receipt")

        def valid(name: str) -> bool:
            return _receipt_name(name) and tail.search(name) is not None

    return JsonResponse({"receipts": _listing(folder, valid)})


@api("GET")
def receipt_file(request: HttpRequest, name: str) -> FileResponse:
    return _serve(_folder(rest_config().receipts_out, "receipts"), name, _receipt_name)
