"""bundlekit: sealed, signed, encrypted bundles for store-and-forward sync.

This package never imports Django; ``django_adapter`` builds on it.
"""

from bundlekit.errors import (
    BadSignature,
    BundleError,
    CorruptBundle,
    KeyFileError,
    NotABundle,
    NotARecipient,
    ReceiptError,
    RevokedKey,
    TruncatedBundle,
    UnknownSender,
    UnsupportedVersion,
    WriteFailed,
)

__version__ = "0.1.0"

__all__ = [
    "BadSignature",
    "BundleError",
    "CorruptBundle",
    "KeyFileError",
    "NotABundle",
    "NotARecipient",
    "ReceiptError",
    "RevokedKey",
    "TruncatedBundle",
    "UnknownSender",
    "UnsupportedVersion",
    "WriteFailed",
]
