"""bundlekit: sealed, signed, encrypted bundles for store-and-forward sync.

This package never imports Django; ``django_adapter`` builds on it.
The file format is specified in docs/FORMAT.md.
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
    SiteNameMismatch,
    TruncatedBundle,
    UnknownSender,
    UnsupportedVersion,
    WriteFailed,
)
from bundlekit.keys import (
    Identity,
    PublicKey,
    generate_keypair,
    load_identity,
    load_public_key,
    write_keypair,
)
from bundlekit.manifest import Manifest
from bundlekit.reader import (
    OpenedBundle,
    VerifiedBundle,
    copy_payload,
    open_bundle,
    read_manifest,
    verify,
)
from bundlekit.receipt import Receipt, ReceiptEntry, read_receipt, write_receipt
from bundlekit.writer import DEFAULT_MAX_BYTES, ChainLink, SealedBundle, seal

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_BYTES",
    "BadSignature",
    "BundleError",
    "ChainLink",
    "CorruptBundle",
    "Identity",
    "KeyFileError",
    "Manifest",
    "NotABundle",
    "NotARecipient",
    "OpenedBundle",
    "PublicKey",
    "Receipt",
    "ReceiptEntry",
    "ReceiptError",
    "RevokedKey",
    "SealedBundle",
    "SiteNameMismatch",
    "TruncatedBundle",
    "UnknownSender",
    "UnsupportedVersion",
    "VerifiedBundle",
    "WriteFailed",
    "copy_payload",
    "generate_keypair",
    "load_identity",
    "load_public_key",
    "open_bundle",
    "read_manifest",
    "read_receipt",
    "seal",
    "verify",
    "write_keypair",
    "write_receipt",
]
