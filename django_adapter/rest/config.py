"""The REST endpoints' view of the ``BUNDLEKIT`` settings dict.

Everything the workflow commands also use (keys, folders, database) comes from
:func:`django_adapter.conf.get_config`, so a server configured for the watched
inbox is configured for REST too.  The nested ``BUNDLEKIT["REST"]`` dict is
read here::

    "REST": {
        "TOKENS": [                      # bearer tokens; none: no token needed
            "...",                       #   a token for every site (a hub, an operator)
            {"TOKEN": "...", "KEY": "keys/laptop-a.pub"},  # bound to one site's key
        ],
        "IMPORT_ON_UPLOAD": True,        # False: move into INBOX for the watcher
        "MAX_UPLOAD_BYTES": 2 << 30,     # larger uploads get 413
        "UPLOAD_DIR": "var/uploads",     # partial uploads (relative to BASE_DIR)
        "MAX_UNFINISHED_UPLOADS": 20,    # per token: unfinished uploads at once
        "MAX_UNFINISHED_BYTES": 4 << 30, # per token: their announced lengths together
    }

A token bound to a key (a ``.pub`` file or a fingerprint) may upload only bundles
signed by that key, and sees only the receipts addressed to it and the outbox
bundles sealed for it.

Read on every request (key files are a few hundred bytes) so a key file
replaced on disk (a revocation) takes effect at once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings

from bundlekit.keys import PublicKey
from django_adapter.conf import ConfigError

REST = "REST"
#: Defaults of the nested ``BUNDLEKIT["REST"]`` dict (docs/REST.md).
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
DEFAULT_UPLOAD_DIR = "var/uploads"
DEFAULT_MAX_UNFINISHED_UPLOADS = 20
DEFAULT_MAX_UNFINISHED_BYTES = 4 << 30
_FINGERPRINT = re.compile(r"[0-9a-f]{4}(?:-[0-9a-f]{4}){7}")


@dataclass(frozen=True)
class Token:
    """One configured bearer token.

    ``id`` names the token in upload records (a hash: the secret is never
    written to disk); ``key`` is the ``.pub`` file or fingerprint it is bound to,
    or ``None`` for a token that acts for every site.
    """

    secret: str
    key: str | None = None

    @property
    def id(self) -> str:
        return hashlib.sha256(self.secret.encode()).hexdigest()[:16]

    def fingerprint(self) -> str | None:
        """The bound key's fingerprint (reads the ``.pub`` file), or None if unbound."""
        if self.key is None:
            return None
        value = self.key.strip()
        if _FINGERPRINT.fullmatch(value.lower()):
            return value.lower()
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = Path(getattr(settings, "BASE_DIR", None) or Path.cwd()) / path
        try:
            from bundlekit.keys import load_public_key

            return load_public_key(path).fingerprint
        except Exception as exc:  # BundleError or OSError: the settings name a bad file
            raise ConfigError(f"BUNDLEKIT['REST']['TOKENS']: KEY {value}: {exc}") from None


#: The token of a request that needed none (no TOKENS configured).
ANONYMOUS = Token("")


def _raw() -> dict[str, Any]:
    return dict(getattr(settings, "BUNDLEKIT", None) or {})


def _rest(raw: dict[str, Any]) -> dict[str, Any]:
    rest = raw.get(REST) or {}
    if not isinstance(rest, dict):
        raise ConfigError("BUNDLEKIT['REST'] must be a dict")
    return rest


def _tokens(rest: dict[str, Any]) -> tuple[Token, ...]:
    tokens = rest.get("TOKENS") or ()
    if isinstance(tokens, str | dict):
        tokens = (tokens,)
    found = []
    for t in tokens:
        if isinstance(t, dict):
            unknown = set(t) - {"TOKEN", "KEY"}
            if unknown or not t.get("TOKEN"):
                raise ConfigError(
                    "BUNDLEKIT['REST']['TOKENS']: a bound token is {'TOKEN': ..., 'KEY': 'NAME.pub'}"
                )
            found.append(Token(str(t["TOKEN"]), str(t["KEY"]) if t.get("KEY") else None))
        elif t:
            found.append(Token(str(t)))
    return tuple(found)


class RestConfig:
    """The REST switches, plus the workflow :class:`~django_adapter.conf.Config`.

    The workflow config (and with it every key file) is loaded on first use:
    listing an outbox must not depend on the server's secret key being readable.
    """

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        rest = _rest(raw)
        base = getattr(settings, "BASE_DIR", None)
        self.tokens = _tokens(rest)
        self.import_on_upload = bool(rest.get("IMPORT_ON_UPLOAD", True))
        self.max_upload_bytes = int(rest.get("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))
        self.max_unfinished_uploads = int(
            rest.get("MAX_UNFINISHED_UPLOADS", DEFAULT_MAX_UNFINISHED_UPLOADS)
        )
        self.max_unfinished_bytes = int(
            rest.get("MAX_UNFINISHED_BYTES", DEFAULT_MAX_UNFINISHED_BYTES)
        )
        upload_dir = Path(os.path.expanduser(os.fspath(rest.get("UPLOAD_DIR") or DEFAULT_UPLOAD_DIR)))
        if not upload_dir.is_absolute():
            upload_dir = Path(base or Path.cwd()) / upload_dir
        self.upload_dir = upload_dir

    @functools.cached_property
    def workflow(self):
        """``get_config()`` of the workflow; the REST dict is ours, so it is left out."""
        from django_adapter.conf import get_config

        shim = SimpleNamespace(
            BUNDLEKIT={k: v for k, v in self.raw.items() if k != REST},
            BASE_DIR=getattr(settings, "BASE_DIR", None),
        )
        return get_config(settings=shim)

    @property
    def trusted(self) -> tuple[PublicKey, ...] | None:
        """None when no TRUSTED keys are set: then every upload is refused, never
        "any correctly signed bundle"."""
        return self.workflow.trusted or None

    @property
    def revoked(self) -> tuple[PublicKey | str, ...]:
        return self.workflow.revoked_keys

    @property
    def outbox(self) -> Path | None:
        return self.workflow.outbox

    @property
    def inbox(self) -> Path | None:
        return self.workflow.inbox

    @property
    def receipts_out(self) -> Path | None:
        return self.workflow.receipts_out

    @property
    def database(self) -> str:
        return self.workflow.database


def rest_config() -> RestConfig:
    return RestConfig(_raw())


def tokens_configured() -> tuple[Token, ...]:
    """Only the tokens: auth must not depend on key files being readable."""
    return _tokens(_rest(_raw()))
