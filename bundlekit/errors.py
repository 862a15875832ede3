"""The one exception family of bundlekit.

Anything wrong with input that came from outside (a bundle file, a receipt, a key
file a person pointed us at) raises a subclass of :class:`BundleError`.  The message
is written for a data manager: it names the file and says what is wrong, in one
line, so the CLI can print ``str(error)`` and exit non-zero.  Callers and tests
match on the class, never on the text.

Misuse by a programmer (wrong argument types, an impossible option) stays
``ValueError``/``TypeError``: those are bugs, not bad input.

Every public exception of bundlekit and of its Django adapter is defined here,
so ``except BundleError`` catches everything a person can fix and
:func:`one_line` is the single place that turns an exception into the line and
exit code both ``bundle`` and ``manage.py bundle`` print.  The tree:

- bundle files: NotABundle, CorruptBundle (TruncatedBundle, BadSignature),
  UnsupportedVersion, UnknownSender (RevokedKey), NotARecipient
- keys: KeyFileError (RevocationListError, NotARevocationList), RotationError
- receipts: ReceiptError (ReceiptCorrupt, ReceiptTruncated, ReceiptBadSignature,
  ReceiptUntrusted, ReceiptNotForUs)
- writing: WriteFailed
- configuration: ConfigError
- the Django adapter: SyncError (edc-sync's name: NaturalKeyError,
  UnresolvedReference, ChainError, NotSyncRecords, AttachmentError), QuarantinedFork,
  NoReceipt
- transport: TransferError (a client's view of a server), ApiError (the server's
  answer to a bad request: Busy, NoSuchUpload)
- the review queue: ReviewError
- the dashboard: DashboardInputError
- the command line: CommandFailed (carries its exit code)
"""

from __future__ import annotations

import os
import sys

#: Exit codes of ``bundle`` and ``manage.py bundle``, stable for scripts.
EXIT_OK = 0
EXIT_INVALID = 1  # a file was rejected, the input or the configuration is wrong
EXIT_USAGE = 2  # the command line itself is wrong (typer/click's own code)
EXIT_INTERNAL = 3  # a bug in bundlekit: please report it
EXIT_INTERRUPTED = 130  # Ctrl-C


class BundleError(Exception):
    """Base class: something about a file we were given is not acceptable."""

    #: Short machine-readable name of the failure class, used in ``--json`` output
    #: and reason files (stable across releases).
    code = "invalid"

    def __init__(self, reason: str, path: str | os.PathLike[str] | None = None):
        self.reason = reason
        self.path = os.fspath(path) if path is not None else None
        super().__init__(reason)

    def __str__(self) -> str:
        if self.path:
            return f"{self.path}: {self.reason}"
        return self.reason

    def with_path(self, path: str | os.PathLike[str]) -> BundleError:
        """Attach the file name when the error was raised below the layer that knew it."""
        if self.path is None:
            self.path = os.fspath(path)
        return self


class NotABundle(BundleError):
    """The file is not a bundle at all (wrong magic; an empty file; a photo)."""

    code = "not-a-bundle"


class CorruptBundle(BundleError):
    """The file is a bundle but its bytes are not what the sender sealed."""

    code = "corrupt"


class TruncatedBundle(CorruptBundle):
    """The file ends early: a half-copied file or a stick pulled mid-write."""

    code = "truncated"


class BadSignature(CorruptBundle):
    """The manifest signature does not verify: forged or altered."""

    code = "bad-signature"


class UnsupportedVersion(BundleError):
    """A format version this release cannot read (written by a newer bundlekit)."""

    code = "unsupported-version"


class UnknownSender(BundleError):
    """Correctly signed, but by a key that is not in the trusted set."""

    code = "unknown-sender"


class SiteNameMismatch(UnknownSender):
    """Signed by a trusted key, but naming another site than the one that key is
    trusted as (a key file whose site line was edited): the name is a claim, the
    key is the proof, and they must agree (docs/SECURITY.md, identity binding)."""

    code = "site-name-mismatch"


class RevokedKey(UnknownSender):
    """Correctly signed by a key that has been revoked."""

    code = "revoked-key"


class NotARecipient(BundleError):
    """None of our keys can decrypt it: it was sealed for someone else."""

    code = "not-a-recipient"


class KeyFileError(BundleError):
    """A key file is missing, unreadable, or of the wrong kind (.pub for .key)."""

    code = "bad-key-file"


class ReceiptError(BundleError):
    """A receipt is corrupt, forged, or meant for another site.

    Base of the receipt refusals below (catch this for "refused, whatever the
    reason"); raised as itself only when the file cannot be read at all.  The
    subclasses' codes are the outcome classes of testdata/vectors/README.md.
    """

    code = "bad-receipt"


class ReceiptCorrupt(ReceiptError):
    """Not a receipt, or damaged: magic, framing, decoding, fields or canonical form.

    Also a receipt of a format version this release cannot read.
    """

    code = "receipt-corrupt"


class ReceiptTruncated(ReceiptCorrupt):
    """The receipt ends early (its footer is missing): a half-copied file."""

    code = "receipt-truncated"


class ReceiptBadSignature(ReceiptCorrupt):
    """The receipt's signature does not verify: altered or forged after signing."""

    code = "receipt-bad-signature"


class ReceiptUntrusted(ReceiptError):
    """Correctly signed, but by a key that is not one of the trusted issuers."""

    code = "receipt-untrusted"


class ReceiptIssuerMismatch(ReceiptUntrusted):
    """Signed by a trusted issuer's key, but naming another site than the one that
    key is trusted as."""

    code = "receipt-issuer-mismatch"


class ReceiptNotForUs(ReceiptError):
    """Correctly signed by a trusted issuer, but written for another site."""

    code = "receipt-not-for-us"


class WriteFailed(BundleError):
    """Writing a bundle failed (full disk, read-only target, stick removed).

    Nothing was left behind that looks like a complete bundle.
    """

    code = "write-failed"


class ReviewError(BundleError):
    """A request about the server's review queue cannot be done as asked: an
    unknown transaction id, one that needs no decision, a missing note, or a
    site's version that still cannot be applied (the message says why)."""

    code = "review"


# --------------------------------------------------------------------------- keys


class RotationError(BundleError):
    """A rotation statement is damaged, forged, or not for a key we trust."""

    code = "bad-rotation"


class RevocationListError(KeyFileError):
    """A revocation list file is damaged or is not one."""

    code = "bad-revocation-list"


class NotARevocationList(RevocationListError):
    """The file is readable but is no revocation list at all (no header, not text):
    :func:`bundlekit.rotation.load_revoked` then tries it as a ``.pub`` file."""


# ---------------------------------------------------------------- configuration


class ConfigError(BundleError):
    """``settings.BUNDLEKIT`` (or a flag overriding it) is missing, wrong, or names a
    key file that cannot be used.  The message names the setting and the file."""

    code = "bad-config"


# ------------------------------------------------------------ the Django adapter


class SyncError(BundleError):
    """A synced model or a sync operation cannot work as configured.

    edc-sync's name, kept so code written against edc-sync still catches what it
    used to (``django_adapter.exceptions`` re-exports it).
    """

    code = "sync-error"


class NaturalKeyError(SyncError):
    """A model lacks ``natural_key()`` / ``get_by_natural_key()``, so its rows cannot
    be found again on another database whose autoincrement pks differ."""

    code = "no-natural-key"


class UnresolvedReference(SyncError):
    """A foreign key or m2m target named in a record is not (yet) on this database.

    Raised while applying; the importer defers the transaction to the end of the
    bundle and only records it as failed if the target never appears.
    """

    code = "unresolved-reference"


class ChainError(SyncError):
    """The local export chain state does not match what is in the outbox (a file
    there does not continue the chain): nothing is sealed until a person looks."""

    code = "chain-broken"


class AttachmentError(SyncError):
    """A file of a file field cannot be captured (larger than ``MAX_FILE_BYTES``),
    sent (its copy is gone or changed) or stored (not arrived, damaged, a name that
    is not acceptable); at the server the record fails with this reason and
    ``bundle retry`` applies it once the file is here."""

    code = "attachment"


class NotSyncRecords(SyncError):
    """A valid bundle whose records are not django_adapter transactions (a bundle
    sealed by another tool with the same keys)."""

    code = "not-sync-records"


class NoReceipt(BundleError):
    """``bundle recover`` was given no receipt for this site: it cannot know what
    the server holds."""

    code = "no-receipt"


class QuarantinedFork(BundleError):
    """The bundle contradicts the sender's chain as this server knows it; it is
    recorded in the ledger, nothing in it is applied, and a person must look."""

    code = "quarantined-fork"


# -------------------------------------------------------------------- transport


class TransferError(BundleError):
    """The server could not be reached or answered something we cannot use.

    ``results`` holds the per-file results gathered before the failure.
    """

    code = "transfer-failed"

    def __init__(self, reason: str, *, code: str | None = None, results: list | None = None):
        super().__init__(reason)
        if code:
            self.code = code
        self.results = results or []


class ApiError(BundleError):
    """The REST API ends a request with HTTP ``status`` and a JSON error body
    ``{"error": code, "reason": reason, **extra}``."""

    def __init__(self, status: int, code: str, reason: str, *, headers=None, **extra):
        super().__init__(reason)
        self.status, self.code = status, code
        self.headers = dict(headers or {})
        self.extra = extra


class Busy(ApiError):
    """Another request is still writing the same upload: the client retries."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "upload-busy",
            "another request is still writing this upload; retry shortly",
            headers={"Retry-After": "1"},
        )


class NoSuchUpload(ApiError):
    """A resumable upload id the server does not hold (finished, removed, or never
    started): the client starts the upload again from offset 0."""

    def __init__(self) -> None:
        super().__init__(404, "no-such-upload", "no upload with this id",
                         headers={"Upload-Offset": "0"})


# ------------------------------------------------------------------ the dashboard


class DashboardInputError(BundleError):
    """A form on the pages was sent without what it needs (a note, a known action)."""

    code = "bad-request"


# ------------------------------------------------------------- the command line


class CommandFailed(BundleError):
    """Raised inside a command to end it with one line and a non-zero exit."""

    code = "command-failed"

    def __init__(self, message: str, exit_code: int = EXIT_INVALID):
        super().__init__(message)
        self.exit_code = exit_code


def one_line(exc: BaseException) -> tuple[str, int]:
    """The line a person sees for ``exc`` and the exit code, for every face.

    ``bundle`` prints ``bundle: LINE`` on stderr; ``manage.py bundle`` raises
    Django's ``CommandError(LINE)``; both pass it through
    :func:`bundlekit.cli.output.escape` so a name cannot break it into two lines.
    Anything not recognised here is a bug in bundlekit: exit 3 with the
    exception's type, never a traceback.
    """
    if isinstance(exc, CommandFailed):
        return str(exc), exc.exit_code
    if isinstance(exc, BundleError):
        return str(exc), EXIT_INVALID
    if _is_database_error(exc):
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return f"database error: {first} (did you run `manage.py migrate`?)", EXIT_INVALID
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: no such file", EXIT_INVALID
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied", EXIT_INVALID
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", EXIT_INVALID
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    return (
        f"internal error: {type(exc).__name__}: {exc} (set BUNDLEKIT_DEBUG=1 for details)",
        EXIT_INTERNAL,
    )


def is_bug(exc: BaseException) -> bool:
    """Whether :func:`one_line` files ``exc`` as a bug (``BUNDLEKIT_DEBUG=1`` re-raises those)."""
    return one_line(exc)[1] == EXIT_INTERNAL


def _is_database_error(exc: BaseException) -> bool:
    """Django's ``DatabaseError`` without importing Django: it is only ever raised
    when Django is loaded already."""
    db = sys.modules.get("django.db")
    return db is not None and isinstance(exc, getattr(db, "DatabaseError", ()))
