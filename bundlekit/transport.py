"""Push and pull bundles over HTTP: the client of the REST endpoints (docs/REST.md).

Where a link exists, the same sealed files a USB stick carries travel over
HTTP instead; nothing here knows a second format.  Built on httpx, imported
only when a transfer starts, so the core (seal, verify, open) works on a
machine without it.  Django-free, like all of bundlekit.

An upload is named by the SHA-256 of the file, so after any failure the client
asks the server how many bytes it holds (``PUT .../uploads/<sha256>`` with
``Content-Range: bytes */SIZE``) and continues from there: a dropped
connection costs only the bytes in flight, never the whole file.  Connection
errors and 5xx answers are retried with exponential backoff; the retry budget
is per stretch without progress, so a flaky link that keeps moving data is not
given up on.  A refusal (4xx: bad signature, unknown sender, too large, fork)
is final and reported, never retried; so is a 5xx whose JSON says
``"retry": false`` (the server's settings are wrong, or a bug there).

Downloads are written to a hidden temporary name in the target folder, checked
against the SHA-256 the server announced and then with :func:`bundlekit.reader.verify`,
and only then renamed into place: a file under a bundle name is always complete.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bundlekit.errors import BundleError, TransferError
from bundlekit.fsutil import AtomicFile
from bundlekit.naming import bundle_files, is_bundle_name

if TYPE_CHECKING:
    import httpx

#: Bytes per upload request; a dropped connection loses at most what was in flight.
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
#: First retry delay in seconds; doubled per failed attempt, capped at MAX_BACKOFF.
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 30.0
DEFAULT_RETRIES = 5
#: Seconds for connecting and sending; the answer to the last chunk may take as
#: long as the server's import of the bundle, so reads get READ_TIMEOUT.
DEFAULT_TIMEOUT = 30.0
READ_TIMEOUT = 900.0
_PIECE = 64 * 1024
_RECEIPT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,200}\.receipt")
#: RECEIPTS.md §2.1 (checked here only to refuse an obviously wrong download).
_RECEIPT_MAGIC = b"bundlekit.org/v2/receipt\n"  # bundlekit.receipt.MAGIC

#: Results whose answer means the server holds the bundle.
HELD_STATUSES = frozenset({"imported", "queued", "already held"})

Progress = Callable[[int], None]
"""Called with the number of bytes just sent or received (a progress bar's advance)."""

#: Module-level so tests can make backoff instant without monkeypatching time.
_sleep = time.sleep


@dataclass(frozen=True)
class PushResult:
    """What happened to one file pushed to a server.

    ``status`` is the server's word (``imported``, ``queued``, ``already held``)
    or ``failed``; then ``error`` is a stable code (the server's, or
    ``unreachable``) and ``reason`` one line for a person.  ``answer`` is the
    server's JSON, with the import report under ``report``.  ``resumed_from``
    is how many bytes the server already held when this push began.
    """

    path: Path
    status: str
    http_status: int | None = None
    error: str | None = None
    reason: str | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    size: int = 0
    sha256: str = ""
    bytes_sent: int = 0
    resumed_from: int = 0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status in HELD_STATUSES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class PullResult:
    """One file offered by the server: ``pulled``, ``present`` (same SHA-256) or ``failed``."""

    name: str
    status: str
    path: Path | None = None
    size: int = 0
    sha256: str = ""
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("pulled", "present")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        data["ok"] = self.ok
        return data


# --------------------------------------------------------------------------- helpers


def _base(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url}: not an http:// or https:// URL")
    return url if url.endswith("/") else url + "/"


def _client(token: str | None, timeout: float) -> httpx.Client:
    import httpx

    headers = {"User-Agent": "bundlekit"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(
        headers=headers,
        timeout=httpx.Timeout(timeout, read=max(timeout, READ_TIMEOUT)),
        follow_redirects=False,
    )


def _delay(backoff: float, failures: int, retry_after: str | None = None) -> float:
    """Exponential backoff with jitter; a server's Retry-After is honoured up to the cap."""
    delay = min(MAX_BACKOFF, backoff * 2 ** max(0, failures - 1))
    if retry_after and retry_after.isdigit():
        delay = max(delay, min(MAX_BACKOFF, float(retry_after)))
    return delay * (0.8 + 0.4 * random.random())


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _refusal(response: httpx.Response) -> tuple[str, str]:
    """(code, one line) from an error answer, even one that is not ours (a proxy's HTML)."""
    body = _json(response)
    code = str(body.get("error") or f"http-{response.status_code}")
    reason = str(body.get("reason") or f"the server answered {response.status_code} {response.reason_phrase}")
    return code, " ".join(reason.split())


def _retryable(response: httpx.Response, answer: dict[str, Any]) -> bool:
    """5xx and 429 are worth another try, unless the server says a retry cannot
    help (``"retry": false``: its settings are wrong, or a bug)."""
    if response.status_code < 500 and response.status_code != 429:
        return False
    return answer.get("retry") is not False


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def _pieces(path: Path, start: int, end: int, progress: Progress | None, sent: list[int]) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left:
            piece = f.read(min(_PIECE, left))
            if not piece:
                raise OSError(f"{path}: the file got shorter while it was being sent")
            left -= len(piece)
            yield piece
            sent[0] += len(piece)
            if progress is not None:
                progress(len(piece))


# --------------------------------------------------------------------------- push


def push(
    url: str,
    paths: Iterable[str | os.PathLike[str]],
    *,
    token: str | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[PushResult]:
    """Upload bundle files (folders stand for the bundles in them) to ``url``.

    ``url`` is where the server included ``django_adapter.urls`` (for example
    ``http://hub:8000/bundles/``).  One result per file, in order; a failed file
    never stops the others.  Raises only for misuse (a bad URL, chunk size).
    """
    base = _base(url)
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    files = bundle_files(paths)
    with _client(token, timeout) as client:
        return [
            _push_one(client, base, path, retries, backoff, chunk_size, progress) for path in files
        ]


def _push_one(client, base, path: Path, retries, backoff, chunk_size, progress) -> PushResult:
    import httpx

    try:
        size = path.stat().st_size
        sha = file_sha256(path)
    except OSError as exc:
        return PushResult(path, "failed", error="unreadable", reason=f"cannot read it ({exc.strerror or exc})")
    url = f"{base}uploads/{sha}"
    sent = [0]
    failures = attempts = 0
    offset: int | None = None  # unknown: ask the server
    resumed_from: int | None = None
    last_error = ("unreachable", "no answer")

    def result(status: str, response=None, **kw) -> PushResult:
        return PushResult(
            path, status, http_status=response.status_code if response is not None else None,
            size=size, sha256=sha, bytes_sent=sent[0], resumed_from=resumed_from or 0,
            attempts=attempts, **kw,
        )

    while True:
        attempts += 1
        try:
            if offset is None:
                headers = {"Content-Range": f"bytes */{size}"}
                response = client.put(url, headers=headers, content=b"")
            else:
                end = min(offset + chunk_size, size)
                headers = {
                    "Content-Range": f"bytes {offset}-{end - 1}/{size}",
                    "Content-Length": str(end - offset),
                    "Content-Type": "application/octet-stream",
                }
                body = _pieces(path, offset, end, progress, sent)
                response = client.put(url, headers=headers, content=body)
        except httpx.TransportError as exc:
            failures += 1
            last_error = ("unreachable", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            if failures > retries:
                return result("failed", error=last_error[0],
                              reason=f"gave up after {attempts} attempts ({last_error[1]})")
            _sleep(_delay(backoff, failures))
            offset = None
            continue
        except OSError as exc:  # our own file, not the network
            return result("failed", error="unreadable", reason=str(exc))

        status = response.status_code
        answer = _json(response)
        if status == 202 or status == 416:
            try:
                new = int(response.headers["Upload-Offset"])
            except (KeyError, ValueError):
                new = -1
            if not 0 <= new <= size:
                return result("failed", response, error="bad-answer",
                              reason="the server did not say how many bytes of the file it holds")
            if resumed_from is None:
                resumed_from = new
                if new and progress is not None:
                    progress(new)
            if offset is None or new > offset:
                failures = 0  # progress: the retry budget starts again
            else:
                failures += 1
                if failures > retries:
                    return result("failed", response, error="no-progress",
                                  reason=f"the server keeps holding {new} bytes; giving up")
            offset = new
            continue
        if status in (200, 201):
            return result(str(answer.get("status") or "imported"), response, answer=answer)
        code, reason = _refusal(response)
        if _retryable(response, answer):
            failures += 1
            if failures > retries:
                return result("failed", response, error=code, answer=answer,
                              reason=f"gave up after {attempts} attempts ({reason})")
            _sleep(_delay(backoff, failures, response.headers.get("Retry-After")))
            offset = None
            continue
        return result("failed", response, error=code, reason=reason, answer=answer)


# --------------------------------------------------------------------------- pull


def _get(client, url: str, retries: int, backoff: float):
    """GET with retries for connection errors and 5xx; the response or TransferError."""
    import httpx

    failures = 0
    while True:
        try:
            response = client.get(url)
        except httpx.TransportError as exc:
            failures += 1
            if failures > retries:
                raise TransferError(f"{url}: cannot reach the server ({exc or type(exc).__name__})",
                                    code="unreachable") from None
            _sleep(_delay(backoff, failures))
            continue
        if response.status_code >= 500 and failures < retries and _retryable(response, _json(response)):
            failures += 1
            _sleep(_delay(backoff, failures, response.headers.get("Retry-After")))
            continue
        if response.status_code != 200:
            code, reason = _refusal(response)
            raise TransferError(f"{url}: {reason}", code=code)
        return response


def pull_each(
    url: str,
    out_dir: str | os.PathLike[str],
    *,
    token: str | None = None,
    trusted=None,
    revoked=(),
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    receipts: bool = False,
    site: str | None = None,
) -> list[PullResult]:
    """Download every bundle the server's outbox offers into ``out_dir``; one result each.

    ``trusted``/``revoked`` are passed to :func:`bundlekit.reader.verify`
    (None: any correctly signed bundle, as a middleman without keys checks).
    With ``receipts``, download the server's receipts instead (only those for
    ``site`` when given): they are checked
    against the announced SHA-256 and their magic here, and fully (signature,
    issuer, addressee) by the site's ``bundle import`` that applies them.
    Raises :class:`TransferError` only when the listing itself cannot be had.
    """
    base = _base(url)
    out = Path(out_dir)
    if not out.is_dir():
        raise TransferError(f"{out}: no such folder (is the stick mounted?)", code="no-folder")
    folder, key = ("receipts/", "receipts") if receipts else ("outbox/", "bundles")
    with _client(token, timeout) as client:
        query = f"?site={quote(site)}" if receipts and site else ""
        listing = _json(_get(client, base + folder + query, retries, backoff)).get(key)
        if not isinstance(listing, list):
            raise TransferError(f"{base}{folder}: the answer is not a listing of {key}", code="bad-answer")
        return [
            _pull_one(client, base + folder, out, item, trusted, revoked, retries, backoff,
                      progress, receipts)
            for item in listing
        ]


def _receipt_name(name: str) -> bool:
    from bundlekit.receipt import is_receipt_name

    return is_receipt_name(name) and _RECEIPT_NAME.fullmatch(name) is not None


def _check_receipt(path: str) -> None:
    from bundlekit.errors import ReceiptError

    with open(path, "rb") as f:
        if f.read(len(_RECEIPT_MAGIC)) != _RECEIPT_MAGIC:
            raise ReceiptError("is not a receipt")


def _pull_one(client, folder_url, out: Path, item, trusted, revoked, retries, backoff, progress,
              receipts: bool = False) -> PullResult:
    import httpx

    from bundlekit.reader import verify

    name = str(item.get("name", "")) if isinstance(item, dict) else ""
    want = str(item.get("sha256", "")).lower() if isinstance(item, dict) else ""
    if not (_receipt_name(name) if receipts else is_bundle_name(name)):
        # Never a path from the server: only names we could have made ourselves.
        what = "receipt" if receipts else "bundle"
        return PullResult(name, "failed", error="bad-name",
                          reason=f"the server offered {name!r}, which is not a {what} file name")
    target = out / name
    if target.exists():
        have = file_sha256(target)
        if hmac.compare_digest(have, want):
            return PullResult(name, "present", target, target.stat().st_size, have)
        return PullResult(name, "failed", error="name-taken", sha256=want,
                          reason=f"{target} exists with other contents; it was left alone")
    failures = 0
    while True:
        h = hashlib.sha256()
        size = 0
        with AtomicFile(out, name) as tmp:
            try:
                with client.stream("GET", folder_url + name) as response:
                    if response.status_code != 200:
                        code, reason = _refusal(response)
                        if response.status_code < 500 or failures >= retries:
                            return PullResult(name, "failed", error=code, reason=reason)
                        raise httpx.RemoteProtocolError(reason)
                    for chunk in response.iter_bytes(_PIECE):
                        tmp.file.write(chunk)
                        h.update(chunk)
                        size += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except httpx.TransportError as exc:
                failures += 1
                if failures > retries:
                    return PullResult(name, "failed", error="unreachable",
                                      reason=f"gave up after {failures} attempts ({exc or type(exc).__name__})")
                tmp.abort()
                _sleep(_delay(backoff, failures))
                continue
            got = h.hexdigest()
            if want and not hmac.compare_digest(got, want):
                return PullResult(name, "failed", error="digest-mismatch", sha256=got,
                                  reason="the download does not match the SHA-256 the server announced")
            tmp.file.flush()
            try:
                if receipts:
                    _check_receipt(tmp.temp_path)
                else:
                    verify(tmp.temp_path, trusted=trusted, revoked=revoked)
            except BundleError as exc:
                return PullResult(name, "failed", error=exc.code, sha256=got, reason=exc.reason)
            try:
                final = tmp.commit(name)
            except BundleError as exc:
                return PullResult(name, "failed", error=exc.code, sha256=got, reason=exc.reason)
        return PullResult(name, "pulled", Path(final), size, got)


def pull(
    url: str,
    out_dir: str | os.PathLike[str],
    *,
    token: str | None = None,
    **options: Any,
) -> list[Path]:
    """Download the server's outbox into ``out_dir``; the paths of the bundles now there.

    Raises :class:`TransferError` (with every result in ``.results``) if any
    file failed; the files that did arrive are kept.
    """
    results = pull_each(url, out_dir, token=token, **options)
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        raise TransferError(
            f"{first.name}: {first.reason}" + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
            code=first.error,
            results=results,
        )
    return [r.path for r in results if r.path is not None]
