"""The REST endpoints' view of the ``BUNDLEKIT`` settings dict.

Read on every request (key files are a few hundred bytes) so a test or an
operator changing settings never meets a stale cache, and a key file replaced
on disk (a revocation) takes effect at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from bundlekit.keys import Identity, PublicKey, load_identity, load_public_key

#: Defaults of the nested ``BUNDLEKIT["REST"]`` dict (docs/REST.md).
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
DEFAULT_UPLOAD_DIR = "var/uploads"


@dataclass(frozen=True)
class RestConfig:
    tokens: tuple[str, ...]
    import_on_upload: bool
    max_upload_bytes: int
    upload_dir: Path
    identities: tuple[Identity, ...]
    #: None means "no TRUSTED setting": every upload is refused (never "trust anyone").
    trusted: tuple[PublicKey | str, ...] | None
    revoked: tuple[PublicKey | str, ...]
    outbox: Path | None
    inbox: Path | None
    receipts_out: Path | None
    database: str


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
    raw = _raw()
    rest = dict(raw.get("REST") or {})
    tokens = rest.get("TOKENS") or ()
    if isinstance(tokens, str):
        tokens = (tokens,)
    trusted = raw.get("TRUSTED")
    return RestConfig(
        tokens=tuple(str(t) for t in tokens if t),
        import_on_upload=bool(rest.get("IMPORT_ON_UPLOAD", True)),
        max_upload_bytes=int(rest.get("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)),
        upload_dir=Path(os.fspath(rest.get("UPLOAD_DIR") or DEFAULT_UPLOAD_DIR)),
        identities=_identity(raw.get("IDENTITY")),
        trusted=_keys(trusted) if trusted else None,
        revoked=_keys(raw.get("REVOKED")),
        outbox=_path(raw.get("OUTBOX")),
        inbox=_path(raw.get("INBOX")),
        receipts_out=_path(raw.get("RECEIPTS_OUT")),
        database=str(raw.get("DATABASE") or "default"),
    )


def tokens_configured() -> tuple[str, ...]:
    """Only the tokens: auth must not fail because a key file is missing."""
    rest = dict(_raw().get("REST") or {})
    tokens = rest.get("TOKENS") or ()
    if isinstance(tokens, str):
        tokens = (tokens,)
    return tuple(str(t) for t in tokens if t)
