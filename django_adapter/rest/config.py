"""The REST endpoints' view of the ``BUNDLEKIT`` settings dict.

Everything the workflow commands also use (keys, folders, database) comes from
:func:`django_adapter.conf.get_config`, so a server configured for the watched
inbox is configured for REST too.  The nested ``BUNDLEKIT["REST"]`` dict is
read here::

    "REST": {
        "TOKENS": ["..."],               # bearer tokens; none: no token needed
        "IMPORT_ON_UPLOAD": True,        # False: move into INBOX for the watcher
        "MAX_UPLOAD_BYTES": 2 << 30,     # larger uploads get 413
        "UPLOAD_DIR": "var/uploads",     # partial uploads (relative to BASE_DIR)
    }

Read on every request (key files are a few hundred bytes) so a key file
replaced on disk (a revocation) takes effect at once.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings

from bundlekit.keys import PublicKey

REST = "REST"
#: Defaults of the nested ``BUNDLEKIT["REST"]`` dict (docs/REST.md).
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
DEFAULT_UPLOAD_DIR = "var/uploads"


def _raw() -> dict[str, Any]:
    return dict(getattr(settings, "BUNDLEKIT", None) or {})


def _rest(raw: dict[str, Any]) -> dict[str, Any]:
    rest = raw.get(REST) or {}
    if not isinstance(rest, dict):
        raise ValueError("BUNDLEKIT['REST'] must be a dict")
    return rest


def _tokens(rest: dict[str, Any]) -> tuple[str, ...]:
    tokens = rest.get("TOKENS") or ()
    if isinstance(tokens, str):
        tokens = (tokens,)
    return tuple(str(t) for t in tokens if t)


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


def tokens_configured() -> tuple[str, ...]:
    """Only the tokens: auth must not depend on key files being readable."""
    return _tokens(_rest(_raw()))
