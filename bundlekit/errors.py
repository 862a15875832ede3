"""The one exception family of bundlekit.

Anything wrong with input that came from outside (a bundle file, a receipt, a key
file a person pointed us at) raises a subclass of :class:`BundleError`.  The message
is written for a data manager: it names the file and says what is wrong, in one
line, so the CLI can print ``str(error)`` and exit non-zero.  Callers and tests
match on the class, never on the text.

Misuse by a programmer (wrong argument types, an impossible option) stays
``ValueError``/``TypeError``: those are bugs, not bad input.
"""

from __future__ import annotations

import os


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
