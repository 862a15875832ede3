"""The one settings dict of the field workflow: ``settings.BUNDLEKIT``.

Everything a machine needs to take part (its name, its key, who may read what it
exports, whose bundles and receipts it accepts, where its folders are) lives in
one dict so a deployment is reviewed in one place, and so the site laptop, the
middleman, the hub and central differ only in that dict::

    BUNDLEKIT = {
        "SITE": "site-a",                  # this machine's site name (required)
        "IDENTITY": "keys/site-a.key",     # this machine's key (required)
        "RECIPIENTS": ["keys/central.pub", "keys/hub.pub"],  # who may read what we export
        "TRUSTED": ["keys/site-b.pub"],    # senders whose bundles we import
        "RECEIPTS_FROM": ["keys/central.pub"],  # whose receipts may let us prune (default:
                                           # RECIPIENTS); never a peer that sends us bundles
        "REVOKED": [],                     # revocation lists, .pub files or fingerprints refused
        "OUTBOX": "var/outbox",            # site: local copy of every sealed bundle until acknowledged
        "INBOX": "var/inbox",              # server: the watched folder
        "RECEIPTS_OUT": "var/receipts",    # server: where signed receipts are written (None: none)
        "FORWARD": None,                   # hub/middleman: folder to forward original bundles to
        "MAX_BYTES": 1 << 30,              # roll over to a new bundle below this size
        "DATABASE": "default",             # database alias used by the commands
        "REST": None,                      # server: the HTTP endpoints' dict (docs/REST.md)
        "DASHBOARD": None,                 # server: the data manager's pages (docs/WORKFLOW.md)
        "ATTACHMENTS": "var/attachments",  # copies of captured files / files received (attachments.py)
        "MAX_FILE_BYTES": 4 << 30,         # the largest file captured or accepted
        "MAX_FILE_BYTES_PER_BUNDLE": None, # server: most bytes of files one bundle may carry
    }

Relative paths resolve against ``settings.BASE_DIR`` when it is set, else the
current directory.  Key files are read only when a command needs them, so a
missing ``.pub`` of a peer does not stop ``bundle status``; when one is needed
and cannot be read, :class:`ConfigError` names the setting and the file in one
line.  The command line overrides (``--identity``, ``--to``, ``--trust``,
``--database``) go through :func:`get_config`'s keyword arguments.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from bundlekit.errors import BundleError, ConfigError
from bundlekit.keys import FINGERPRINT, Identity, PublicKey, load_identity, load_public_key
from bundlekit.writer import DEFAULT_MAX_BYTES

SETTING = "BUNDLEKIT"

DEFAULTS: dict[str, Any] = {
    "RECIPIENTS": [],
    "TRUSTED": [],
    # None: the RECIPIENTS (the servers we seal for) may acknowledge our bundles.
    "RECEIPTS_FROM": None,
    "REVOKED": [],
    "OUTBOX": "var/outbox",
    "INBOX": "var/inbox",
    "RECEIPTS_OUT": "var/receipts",
    "FORWARD": None,
    "MAX_BYTES": DEFAULT_MAX_BYTES,
    "DATABASE": "default",
    # The optional REST transport's own dict; django_adapter.rest.config reads it.
    "REST": None,
    # The data manager's pages' own dict; django_adapter.dashboard.settings reads it.
    "DASHBOARD": None,
    # Dotted path of the apply engine's policy class (django_adapter/apply/policy.py);
    # None: FieldRules (values checked, any trusted site may change any row).
    "APPLY_POLICY": None,
    # Attachments (django_adapter/attachments.py): the folder of copies and received
    # files, the largest file, and the most bytes of files one bundle may carry.
    "ATTACHMENTS": "var/attachments",
    "MAX_FILE_BYTES": 4 << 30,
    "MAX_FILE_BYTES_PER_BUNDLE": None,
}
REQUIRED = ("SITE", "IDENTITY")
KNOWN = frozenset(REQUIRED) | frozenset(DEFAULTS)
_LISTS = ("RECIPIENTS", "TRUSTED", "REVOKED", "RECEIPTS_FROM")
_FINGERPRINT = FINGERPRINT


@dataclass(frozen=True)
class Config:
    """``settings.BUNDLEKIT`` checked and resolved; keys are loaded on first use."""

    site: str
    identity_path: Path
    recipient_paths: tuple[Path, ...] = ()
    trusted_paths: tuple[Path, ...] = ()
    #: None: RECEIPTS_FROM is not set, the recipients issue receipts.
    receipts_from_paths: tuple[Path, ...] | None = None
    revoked: tuple[str, ...] = ()  # .pub paths or fingerprints, as configured
    outbox: Path = Path("var/outbox")
    inbox: Path = Path("var/inbox")
    receipts_out: Path | None = Path("var/receipts")
    forward: Path | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    database: str = "default"
    base_dir: Path = Path(".")

    @cached_property
    def identity(self) -> Identity:
        return _load("IDENTITY", self.identity_path, load_identity)

    @cached_property
    def recipients(self) -> tuple[PublicKey, ...]:
        return tuple(_load("RECIPIENTS", p, load_public_key) for p in self.recipient_paths)

    @cached_property
    def trusted(self) -> tuple[PublicKey, ...]:
        return tuple(_load("TRUSTED", p, load_public_key) for p in self.trusted_paths)

    @cached_property
    def receipts_from(self) -> tuple[PublicKey, ...]:
        """Keys whose receipts we accept: RECEIPTS_FROM, else RECIPIENTS."""
        if self.receipts_from_paths is None:
            return self.recipients
        return tuple(_load("RECEIPTS_FROM", p, load_public_key) for p in self.receipts_from_paths)

    @cached_property
    def revoked_keys(self) -> tuple[PublicKey | str, ...]:
        """Fingerprints, .pub files or revocation lists (`bundle keys revoke`).

        Fingerprints stay strings (bundlekit's verify accepts both forms).
        """
        from bundlekit.rotation import load_revoked

        items = [
            item.strip().lower() if _FINGERPRINT.fullmatch(item.strip().lower()) else self._path(item)
            for item in self.revoked
        ]
        try:
            return tuple(load_revoked(items))
        except BundleError as exc:
            raise ConfigError(f"{SETTING}['REVOKED']: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{SETTING}['REVOKED']: {exc.filename}: cannot be read ({exc.strerror})") from None

    def _path(self, value: str | os.PathLike[str]) -> Path:
        return _resolve(value, self.base_dir)

    def need_recipients(self) -> tuple[PublicKey, ...]:
        """Exporting to nobody would seal bundles no server can read: refuse early."""
        if not self.recipient_paths:
            raise ConfigError(
                f"{SETTING}['RECIPIENTS'] is empty: nobody could read the exported bundles "
                "(list the servers' .pub files, or pass --to)"
            )
        return self.recipients

    def need_trusted(self) -> tuple[PublicKey, ...]:
        """Accepting any signer would let anyone with a stick write into this database."""
        if not self.trusted_paths:
            raise ConfigError(
                f"{SETTING}['TRUSTED'] is empty: no sender is trusted "
                "(list their .pub files, or pass --trust)"
            )
        return self.trusted

    def receipt_issuers(self) -> tuple[PublicKey, ...]:
        """Who may tell us that data arrived, so that we may delete it: RECEIPTS_FROM
        (else the RECIPIENTS, the servers we seal for) minus revoked keys.

        Never TRUSTED as such: trusting a peer laptop's bundles must not let it
        acknowledge ours (issue 10: a peer's receipt made a laptop prune data the
        server never received).
        """
        if self.receipts_from_paths is None and not self.recipient_paths:
            raise ConfigError(
                f"{SETTING}['RECEIPTS_FROM'] is not set and RECIPIENTS is empty: nobody may "
                "acknowledge our bundles (list the servers' .pub files in RECEIPTS_FROM)"
            )
        if self.receipts_from_paths is not None and not self.receipts_from_paths:
            raise ConfigError(
                f"{SETTING}['RECEIPTS_FROM'] is empty: nobody may acknowledge our bundles "
                "(list the servers' .pub files, or pass --trust to `bundle receipt`)"
            )
        revoked = self.revoked_keys
        return tuple(k for k in self.receipts_from if not _is_revoked(k, revoked))

    #: The name before issue 10 separated the roles; same keys as receipt_issuers().
    trusted_issuers = receipt_issuers


def _is_revoked(key: PublicKey, revoked: Iterable[PublicKey | str]) -> bool:
    for r in revoked:
        if isinstance(r, str) and r == key.fingerprint:
            return True
        if isinstance(r, PublicKey) and r.ed25519 == key.ed25519:
            return True
    return False


def _load(setting: str, path: Path, loader):
    try:
        return loader(path)
    except BundleError as exc:
        raise ConfigError(f"{SETTING}['{setting}']: {exc}") from None
    except OSError as exc:
        raise ConfigError(
            f"{SETTING}['{setting}']: {path}: cannot be read ({exc.strerror or exc})"
        ) from None


def _resolve(value: str | os.PathLike[str], base: Path) -> Path:
    path = Path(os.path.expanduser(os.fspath(value)))
    return path if path.is_absolute() else base / path


def _base_dir(settings) -> Path:
    base = getattr(settings, "BASE_DIR", None)
    return Path(base) if base else Path.cwd()


def problems(raw: Any) -> list[str]:
    """Everything wrong with the dict itself (not the key files); empty when fine."""
    if not isinstance(raw, dict):
        return [f"{SETTING} must be a dict, got {type(raw).__name__}"]
    found = []
    for key in REQUIRED:
        if not raw.get(key):
            found.append(f"{SETTING}['{key}'] is required")
    for key in sorted(set(raw) - KNOWN):
        found.append(f"{SETTING}[{key!r}] is not a known setting (known: {', '.join(sorted(KNOWN))})")
    for key in _LISTS:
        value = raw.get(key, [])
        if key == "RECEIPTS_FROM" and value is None:
            continue
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            found.append(f"{SETTING}['{key}'] must be a list of key files")
    if "SITE" in raw and raw["SITE"] and not isinstance(raw["SITE"], str):
        found.append(f"{SETTING}['SITE'] must be a string")
    max_bytes = raw.get("MAX_BYTES", DEFAULT_MAX_BYTES)
    if type(max_bytes) is not int or max_bytes <= 0:
        found.append(f"{SETTING}['MAX_BYTES'] must be a positive integer")
    for key in ("MAX_FILE_BYTES", "MAX_FILE_BYTES_PER_BUNDLE"):
        value = raw.get(key, DEFAULTS[key])
        if value is not None and (type(value) is not int or value <= 0):
            found.append(f"{SETTING}['{key}'] must be a positive integer")
    if not isinstance(raw.get("DATABASE", "default"), str):
        found.append(f"{SETTING}['DATABASE'] must be a database alias")
    return found


def get_config(
    *,
    identity: str | os.PathLike[str] | None = None,
    recipients: Iterable[str | os.PathLike[str]] | None = None,
    trusted: Iterable[str | os.PathLike[str]] | None = None,
    database: str | None = None,
    receipts_from: Iterable[str | os.PathLike[str]] | None = None,
    settings=None,
) -> Config:
    """Read ``settings.BUNDLEKIT``; non-empty keyword arguments override it.

    Flag values are paths as typed on the command line, so they resolve against
    the current directory, not ``BASE_DIR``.
    """
    if settings is None:
        from django.conf import settings
    raw = getattr(settings, SETTING, None)
    if raw is None:
        raise ConfigError(f"settings.{SETTING} is not set: see docs/WORKFLOW.md")
    found = problems(raw)
    if found:
        raise ConfigError(found[0])
    base = _base_dir(settings)
    values = {**DEFAULTS, **raw}

    def paths(key: str) -> tuple[Path, ...]:
        return tuple(_resolve(p, base) for p in values[key])

    def optional(key: str) -> Path | None:
        return _resolve(values[key], base) if values[key] else None

    config = Config(
        site=values["SITE"],
        identity_path=_resolve(values["IDENTITY"], base),
        recipient_paths=paths("RECIPIENTS"),
        trusted_paths=paths("TRUSTED"),
        receipts_from_paths=paths("RECEIPTS_FROM") if values["RECEIPTS_FROM"] is not None else None,
        revoked=tuple(os.fspath(_resolve(r, base)) if not _FINGERPRINT.fullmatch(str(r).lower())
                      else str(r) for r in values["REVOKED"]),
        outbox=_resolve(values["OUTBOX"], base),
        inbox=_resolve(values["INBOX"], base),
        receipts_out=optional("RECEIPTS_OUT"),
        forward=optional("FORWARD"),
        max_bytes=values["MAX_BYTES"],
        database=values["DATABASE"],
        base_dir=base,
    )
    changes: dict[str, Any] = {}
    if identity:
        changes["identity_path"] = Path(identity).absolute()
    if recipients:
        changes["recipient_paths"] = tuple(Path(p).absolute() for p in recipients)
    if trusted:
        changes["trusted_paths"] = tuple(Path(p).absolute() for p in trusted)
    if receipts_from:
        changes["receipts_from_paths"] = tuple(Path(p).absolute() for p in receipts_from)
    if database:
        changes["database"] = database
    if changes:
        config = dataclasses.replace(config, **changes)
    from django.db import connections

    if config.database not in connections.settings:
        raise ConfigError(f"{SETTING}['DATABASE']: no database alias {config.database!r} in DATABASES")
    return config


__all__ = ["Config", "ConfigError", "get_config", "problems", "DEFAULTS", "SETTING"]


# ------------------------------------------------------------------ system check


def check_settings(app_configs=None, **kwargs):
    """``manage.py check``: find a wrong BUNDLEKIT dict at deploy time, not in the field.

    Silent when the dict is absent: a project may use django_adapter only for
    capture (or through edc-sync's two-alias calls) and never run the commands.
    """
    from django.conf import settings
    from django.core import checks

    raw = getattr(settings, SETTING, None)
    if raw is None:
        return []
    errors = [checks.Error(p, id="django_adapter.E101") for p in problems(raw)]
    if errors:
        return errors
    try:
        config = get_config(settings=settings)
    except ConfigError as exc:
        return [checks.Error(str(exc), id="django_adapter.E102")]
    # Key files that are not there yet must not block `migrate` on a new machine
    # (keys are often made after the database): warn; the bundle commands refuse
    # to run with a one-line message until they exist. A key file that exists but
    # is wrong is an error.
    # One warning per file, even when a file is named by two settings (a server's
    # .pub both trusted and a recipient).
    absent = [
        p for p in dict.fromkeys((config.identity_path, *config.recipient_paths,
                                  *config.trusted_paths, *(config.receipts_from_paths or ())))
        if not p.exists()
    ]
    if absent:
        return [
            checks.Warning(
                f"{SETTING}: key file {p} does not exist yet",
                hint="create it with `bundle keygen` (or copy the .pub from its owner)",
                id="django_adapter.W102",
            )
            for p in absent
        ]
    try:
        identity = config.identity
        config.recipients  # noqa: B018 - loading is the check
        config.trusted  # noqa: B018
        config.receipts_from  # noqa: B018
        config.revoked_keys  # noqa: B018
    except ConfigError as exc:
        return [checks.Error(str(exc), id="django_adapter.E102")]
    if identity.site != config.site:
        errors.append(
            checks.Warning(
                f"{SETTING}['SITE'] is {config.site!r} but the key {config.identity_path.name} "
                f"belongs to site {identity.site!r}; bundles carry the key's name.",
                id="django_adapter.W101",
            )
        )
    errors.extend(role_warnings(config))
    return errors


def role_warnings(config: Config) -> list:
    """Every key has one role: a peer that sends us bundles must not be able to
    acknowledge ours (its receipt would let ``bundle prune`` delete data the
    server never received).  Only a machine that exports (has RECIPIENTS or
    RECEIPTS_FROM) takes receipts, so only there do these warnings apply."""
    from django.core import checks

    found = []
    if not config.recipient_paths and not config.receipts_from_paths:
        return found
    trusted = {k.fingerprint: k for k in config.trusted}
    issuers = config.receipts_from
    if config.receipts_from_paths is None and any(
        fp not in {k.fingerprint for k in issuers} for fp in trusted
    ):
        found.append(
            checks.Warning(
                f"{SETTING}['RECEIPTS_FROM'] is not set: receipts are accepted only from the "
                f"RECIPIENTS ({', '.join(k.site for k in issuers)}), no longer from every "
                "TRUSTED key as before.",
                hint="Set RECEIPTS_FROM to the .pub files of the servers that acknowledge this "
                "site's bundles (TRUSTED now only says whose bundles we import).",
                id="django_adapter.W103",
            )
        )
    for key in issuers:
        if key.fingerprint in trusted:
            found.append(
                checks.Warning(
                    f"{SETTING}: {key.site} ({key.fingerprint}) both sends us bundles (TRUSTED) "
                    "and may acknowledge ours (RECEIPTS_FROM or RECIPIENTS): a sending peer's "
                    "receipt would let `bundle prune` delete data the server never received.",
                    hint="List only the servers that acknowledge this site's bundles in "
                    "RECEIPTS_FROM; keep peers in TRUSTED only.",
                    id="django_adapter.W104",
                )
            )
    return found


def _register_check() -> None:
    from django.core import checks

    checks.register(check_settings)


_register_check()
