"""The REST endpoints' view of the ``BUNDLEKIT`` settings dict.

Read on every request (key files are a few hundred bytes) so a test or an
operator changing settings never meets a stale cache, and a key file replaced
on disk (a revocation) takes effect at once.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from django.conf import settings

from bundlekit.keys import Identity, PublicKey, load_identity, load_public_key

#: Defaults of the nested ``BUNDLEKIT["REST"]`` dict (docs/REST.md).
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
DEFAULT_UPLOAD_DIR = "var/uploads"


class RestConfig:
    """Paths and switches read at once; key files only when a view needs them.

    Listing an outbox must keep working when, say, the server's secret key is
    not readable by the web server's user: keys are loaded on first use.
    """

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        rest = dict(raw.get("REST") or {})
        self.tokens = _tokens(rest)
        self.import_on_upload = bool(rest.get("IMPORT_ON_UPLOAD", True))
        self.max_upload_bytes = int(rest.get("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))
        self.upload_dir = Path(os.fspath(rest.get("UPLOAD_DIR") or DEFAULT_UPLOAD_DIR))
        self.outbox = _path(raw.get("OUTBOX"))
        self.inbox = _path(raw.get("INBOX"))
        self.receipts_out = _path(raw.get("RECEIPTS_OUT"))
        self.database = str(raw.get("DATABASE") or "default")

    @functools.cached_property
    def identities(self) -> tuple[Identity, ...]:
        return _identity(self.raw.get("IDENTITY"))

    @functools.cached_property
    def trusted(self) -> tuple[PublicKey | str, ...] | None:
        """None when no TRUSTED keys are set: then every upload is refused, never
        "any correctly signed bundle"."""
        keys = _keys(self.raw.get("TRUSTED"))
        return keys or None

    @functools.cached_property
    def revoked(self) -> tuple[PublicKey | str, ...]:
        return _keys(self.raw.get("REVOKED"))


def _tokens(rest: dict[str, Any]) -> tuple[str, ...]:
    tokens = rest.get("TOKENS") or ()
    if isinstance(tokens, str):
        tokens = (tokens,)
    return tuple(str(t) for t in tokens if t)


def _raw() -> dict[str, Any]:
    """The ``BUNDLEKIT`` settings dict as written in settings.py."""
    return dict(getattr(settings, "BUNDLEKIT", None) or {})


def _path(value: Any) -> Path | None:
    return Path(os.fspath(value)) if value else None


def _identity(value: Any) -> tuple[Identity, ...]:
    if not value:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(v if isinstance(v, Identity) else load_identity(v) for v in items)


def _keys(value: Any) -> tuple[PublicKey | str, ...]:
    """Public keys given as objects, .pub paths, folders of .pub files or fingerprints."""
    if not value:
        return ()
    items = value if isinstance(value, list | tuple | set | frozenset) else [value]
    out: list[PublicKey | str] = []
    for item in items:
        if isinstance(item, PublicKey):
            out.append(item)
            continue
        path = Path(os.fspath(item))
        if path.is_dir():
            out.extend(load_public_key(p) for p in sorted(path.glob("*.pub")))
        elif path.suffix == ".pub" or path.exists():
            out.append(load_public_key(path))
        else:
            out.append(str(item))  # a fingerprint
    return tuple(out)


def rest_config() -> RestConfig:
    return RestConfig(_raw())


def tokens_configured() -> tuple[str, ...]:
    """Only the tokens: auth must not depend on key files being readable."""
    return _tokens(dict(_raw().get("REST") or {}))
