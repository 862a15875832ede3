"""bundlekit: sealed, signed, encrypted bundles for store-and-forward sync.

This package never imports Django; ``django_adapter`` builds on it.
The file format is specified in docs/FORMAT.md.

The names below are loaded on first use (PEP 562), each from the module that
defines it: ``import bundlekit`` or ``from bundlekit.errors import ...`` loads
nothing else, so ``bundle --version`` and ``manage.py check`` do not pay for
cryptography, msgpack and zstandard they never use.  ``from bundlekit import
seal`` works as before.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: module -> the public names it gives this package.
_EXPORTS = {
    "errors": (
        "BadSignature",
        "BundleError",
        "CorruptBundle",
        "KeyFileError",
        "NotABundle",
        "NotARecipient",
        "ReceiptError",
        "RevokedKey",
        "SiteNameMismatch",
        "TruncatedBundle",
        "UnknownSender",
        "UnsupportedVersion",
        "WriteFailed",
    ),
    "keys": (
        "Identity",
        "PublicKey",
        "generate_keypair",
        "load_identity",
        "load_public_key",
        "write_keypair",
    ),
    "manifest": ("Manifest",),
    "reader": (
        "OpenedBundle",
        "VerifiedBundle",
        "copy_payload",
        "open_bundle",
        "read_manifest",
        "verify",
    ),
    "receipt": ("Receipt", "ReceiptEntry", "read_receipt", "write_receipt"),
    "writer": ("DEFAULT_MAX_BYTES", "ChainLink", "SealedBundle", "seal"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
