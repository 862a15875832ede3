"""Key rotation and revocation (docs/SECURITY.md, "Key rotation and revocation").

Two small, separate mechanisms:

* A **rotation statement** (``NAME.rotation``) says "site S replaces key OLD by
  key NEW".  It is signed by BOTH keys: the old key's signature shows that the
  holder of the key a server already trusts wants the change; the new key's
  signature shows that the site really holds the new key (nobody can claim
  someone else's key).  A server that trusts OLD checks it with
  :func:`read_rotation` and writes ``NEW.pub`` into its trust folder
  (:func:`accept_rotation`); from then on both keys are trusted until the old
  one is retired.  Nothing is trusted automatically because a file arrived on a
  stick: accepting is a person's command.

* A **revocation list** (a text file, ``revoked.list``) names keys whose
  bundles, receipts and rotation statements are refused from now on
  (``RevokedKey``).  It is the server's own policy file, not a signed
  statement: whoever administers the server decides.  Revocation is by the
  Ed25519 signing key, whatever encryption key it was paired with, and has no
  date cut-off: a stolen key can sign any ``created`` time it likes, so a
  date in a manifest proves nothing.  Data already applied stays applied.

Both files are UTF-8 text a person can read, with ``#`` comment lines.  This
module never imports Django.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass

from bundlekit import age
from bundlekit.age import bech32
from bundlekit.canonical import format_utc, parse_utc
from bundlekit.errors import (
    BundleError,
    KeyFileError,
    NotARevocationList,
    RevocationListError,
    RevokedKey,
    RotationError,
    SiteNameMismatch,
    UnknownSender,
)
from bundlekit.fsutil import atomic_write_bytes
from bundlekit.keys import (
    FINGERPRINT,
    PUB_SUFFIX,
    VERIFY_KEY_HRP,
    Identity,
    PublicKey,
    load_identity,
    load_public_key,
    pub_file_text,
    read_text_file,
    write_keypair,
    write_new_file,
)
from bundlekit.naming import safe_site

#: Domain label of both rotation signatures, so they never verify as a manifest
#: (``bundlekit.org/v1/manifest``) or a receipt signature, nor the other way round.
ROTATION_CONTEXT = b"bundlekit.org/v1/rotation\n"
ROTATION_HEADER = "bundlekit-rotation: v1"
ROTATION_SUFFIX = ".rotation"
REVOCATIONS_HEADER = "bundlekit-revocations: v1"
#: The signed lines of a rotation statement, in this order, then the two signatures.
_SIGNED_FIELDS = (
    "site",
    "created",
    "old-fingerprint",
    "old-recipient",
    "old-verify-key",
    "new-fingerprint",
    "new-recipient",
    "new-verify-key",
)
_SIGNATURE_FIELDS = ("old-signature", "new-signature")
_ENTRY_FIELDS = ("revoked", "site", "fingerprint", "recipient", "verify-key", "reason")
_MAX_FILE = 64 * 1024
_MAX_REVOCATION_LIST = 8 * 1024 * 1024
MAX_REASON = 200
_FINGERPRINT = FINGERPRINT


@dataclass(frozen=True)
class Rotation:
    """A checked rotation statement: ``old`` hands over to ``new`` (same site)."""

    old: PublicKey
    new: PublicKey
    created: dt.datetime
    path: str | None = None


@dataclass(frozen=True)
class Revocation:
    """One entry of a revocation list."""

    key: PublicKey
    reason: str
    revoked: dt.datetime


# --------------------------------------------------------------------------- helpers


_format_time = format_utc
_parse_time = parse_utc


def _key_from(site: str, recipient: str, verify_key: str, fingerprint: str) -> PublicKey:
    hrp, ed = bech32.decode(verify_key)
    if hrp != VERIFY_KEY_HRP:
        raise ValueError("bad verify key")
    key = PublicKey(site, age.decode_recipient(recipient), ed)
    if key.fingerprint != fingerprint:
        raise ValueError("a fingerprint does not match its keys")
    return key


def _is_revoked(key: PublicKey, revoked: Iterable[PublicKey | str]) -> bool:
    """By signing key for PublicKey entries, by exact fingerprint for strings (as the reader)."""
    for r in revoked:
        if isinstance(r, str):
            if r.strip().lower() == key.fingerprint:
                return True
        elif r.ed25519 == key.ed25519:
            return True
    return False


# --------------------------------------------------------------------------- rotation


def _signed_lines(old: PublicKey, new: PublicKey, created: str) -> list[str]:
    values = {
        "site": old.site,
        "created": created,
        "old-fingerprint": old.fingerprint,
        "old-recipient": old.age_recipient,
        "old-verify-key": old.verify_key,
        "new-fingerprint": new.fingerprint,
        "new-recipient": new.age_recipient,
        "new-verify-key": new.verify_key,
    }
    return [ROTATION_HEADER] + [f"{k}: {values[k]}" for k in _SIGNED_FIELDS]


def _signed_message(lines: list[str]) -> bytes:
    return ROTATION_CONTEXT + ("\n".join(lines) + "\n").encode("utf-8")


def rotation_text(old: Identity, new: Identity, created: dt.datetime | None = None) -> str:
    """The rotation statement ``old`` -> ``new``, signed by both (``created`` is a test seam)."""
    if old.site != new.site:
        raise ValueError("a rotation keeps the site name: old and new key must name the same site")
    if old.public.same_key(new.public):
        raise ValueError("the new key is the old key")
    lines = _signed_lines(old.public, new.public, _format_time(created or dt.datetime.now(dt.UTC)))
    message = _signed_message(lines)
    sig_old = base64.b64encode(old.sign(message)).decode("ascii")
    sig_new = base64.b64encode(new.sign(message)).decode("ascii")
    return (
        f"# bundlekit key rotation: site {old.site!r} replaces key {old.fingerprint}\n"
        f"# by key {new.fingerprint}. Public: share it freely. A server that trusts the\n"
        "# old key accepts it with: bundle keys accept THIS_FILE --trust OLD.pub --dir KEYS\n"
        + "\n".join(lines)
        + f"\nold-signature: {sig_old}\nnew-signature: {sig_new}\n"
    )


def rotate(
    old_key: str | os.PathLike[str],
    directory: str | os.PathLike[str] | None = None,
    name: str | None = None,
    created: dt.datetime | None = None,
) -> tuple[Identity, str, str, str]:
    """Make a new key pair for the site of ``old_key`` and the rotation statement.

    Writes ``NAME.key`` (mode 0600), ``NAME.pub`` and ``NAME.rotation`` into
    ``directory`` (default: the old key's folder), refusing to overwrite
    anything.  ``name`` defaults to the site name and the new fingerprint's
    first group (``site-a-6617``).  Returns (new identity, key, pub, rotation).
    """
    old = load_identity(old_key)
    new = Identity.generate(old.site)
    folder = os.fspath(directory) if directory is not None else os.path.dirname(os.path.abspath(old_key))
    stem = safe_site(name) if name else f"{safe_site(old.site)}-{new.fingerprint[:4]}"
    rotation_path = os.path.join(folder, stem + ROTATION_SUFFIX)
    if os.path.lexists(rotation_path):
        raise KeyFileError("already exists; refusing to overwrite it", path=rotation_path)
    text = rotation_text(old, new, created)
    os.makedirs(folder, exist_ok=True)
    key_path, pub_path = write_keypair(new, folder, stem)
    try:
        write_new_file(rotation_path, text)
    except KeyFileError:
        for p in (key_path, pub_path):
            try:
                os.unlink(p)
            except OSError:
                pass
        raise
    return new, key_path, pub_path, rotation_path


def parse_rotation(text: str, path: str | os.PathLike[str] | None = None) -> Rotation:
    """Check a statement's form and both signatures; no trust decision (see read_rotation)."""
    lines = [line for line in text.split("\n") if line and not line.startswith("#")]
    try:
        if not lines or lines[0] != ROTATION_HEADER:
            raise RotationError("is not a key rotation statement")
        expected = _SIGNED_FIELDS + _SIGNATURE_FIELDS
        if len(lines) != 1 + len(expected):
            raise RotationError("is damaged: it does not have exactly the fields of a rotation")
        fields: dict[str, str] = {}
        for line, key in zip(lines[1:], expected, strict=True):
            if not line.startswith(key + ": "):
                raise RotationError(f"is damaged: field {key!r} is missing or out of place")
            fields[key] = line[len(key) + 2 :]
        try:
            created = _parse_time(fields["created"])
            old = _key_from(fields["site"], fields["old-recipient"], fields["old-verify-key"],
                            fields["old-fingerprint"])
            new = _key_from(fields["site"], fields["new-recipient"], fields["new-verify-key"],
                            fields["new-fingerprint"])
            sigs = [base64.b64decode(fields[k], validate=True) for k in _SIGNATURE_FIELDS]
        except (ValueError, TypeError, binascii.Error) as e:
            raise RotationError(f"is damaged ({e})") from None
        signed = _signed_lines(old, new, fields["created"])
        if signed != lines[: len(signed)] or any(
            len(s) != 64 or base64.b64encode(s).decode("ascii") != fields[k]
            for s, k in zip(sigs, _SIGNATURE_FIELDS, strict=True)
        ):
            raise RotationError("is damaged: it is not in canonical form")
        if old.same_key(new):
            raise RotationError("is damaged: its old and new key are the same")
        message = _signed_message(signed)
        if not old.verify(sigs[0], message):
            raise RotationError("bad signature: the old key did not sign this rotation (forged or altered)")
        if not new.verify(sigs[1], message):
            raise RotationError("bad signature: the new key did not sign this rotation (forged or altered)")
    except BundleError as e:
        if path is not None:
            e.with_path(path)
        raise
    return Rotation(old, new, created, os.fspath(path) if path is not None else None)


def read_rotation(
    path: str | os.PathLike[str],
    trusted: Iterable[PublicKey] | None,
    revoked: Iterable[PublicKey | str] = (),
) -> Rotation:
    """Read and check a rotation statement against the keys we trust.

    ``trusted`` None checks only form and signatures.  Otherwise the old key
    must be one of ``trusted`` (UnknownSender if not).  A revoked old key is
    refused (RevokedKey): a thief holding a revoked key must not be able to
    hand its trust to a key of their own; so is a revoked new key.
    """
    text = read_text_file(path, "a key rotation statement", _MAX_FILE, RotationError)
    rot = parse_rotation(text, path)
    revoked = list(revoked)
    for which, key in (("old", rot.old), ("new", rot.new)):
        if _is_revoked(key, revoked):
            raise RevokedKey(
                f"hands site {key.site!r} to or from key {key.fingerprint} ({which}), "
                "which has been revoked",
                path=path,
            )
    if trusted is not None:
        keyed = [t for t in trusted if rot.old.same_key(t)]
        if not keyed:
            raise UnknownSender(
                f"rotates key {rot.old.fingerprint} of site {rot.old.site!r}, "
                "which is not one of the trusted keys",
                path=path,
            )
        if not any(t.site == rot.old.site for t in keyed):
            # Identity binding: the old key may hand over only the name it is
            # trusted as, or a rotation would rename a trusted key.
            raise SiteNameMismatch(
                f"hands over site {rot.old.site!r}, but the key that signed it "
                f"({rot.old.fingerprint}) is trusted as site {keyed[0].site!r}: refused",
                path=path,
            )
    return rot


def accept_rotation(
    path: str | os.PathLike[str],
    trusted: Iterable[PublicKey],
    directory: str | os.PathLike[str],
    revoked: Iterable[PublicKey | str] = (),
    name: str | None = None,
) -> tuple[Rotation, str]:
    """Check a statement against ``trusted`` and write the new key's ``.pub`` into ``directory``.

    Returns (rotation, pub path).  Refuses to overwrite an existing file; if
    an identical ``.pub`` is already there (accepted before) it is returned as is.
    """
    rot = read_rotation(path, list(trusted), revoked)
    stem = safe_site(name) if name else f"{safe_site(rot.new.site)}-{rot.new.fingerprint[:4]}"
    pub_path = os.path.join(os.fspath(directory), stem + PUB_SUFFIX)
    if os.path.lexists(pub_path):
        existing = load_public_key(pub_path)
        if existing.same_key(rot.new):
            return rot, pub_path
        raise KeyFileError("already exists and holds another key; refusing to replace it",
                           path=pub_path)
    os.makedirs(os.fspath(directory), exist_ok=True)
    write_new_file(pub_path, pub_file_text(rot.new))
    return rot, pub_path


# --------------------------------------------------------------------------- revocation


def _entry_text(r: Revocation) -> str:
    k = r.key
    return (
        f"revoked: {_format_time(r.revoked)}\n"
        f"site: {k.site}\n"
        f"fingerprint: {k.fingerprint}\n"
        f"recipient: {k.age_recipient}\n"
        f"verify-key: {k.verify_key}\n"
        f"reason: {r.reason}\n"
    )


def revocation_list_text(entries: Iterable[Revocation]) -> str:
    body = "\n".join(_entry_text(r) for r in entries)
    return (
        "# bundlekit revocation list: bundles, receipts and key rotations signed by\n"
        "# these keys are refused. Add entries with: bundle keys revoke KEY.pub --reason ...\n"
        f"{REVOCATIONS_HEADER}\n\n" + body
    )


def _check_reason(reason: str) -> str:
    if not isinstance(reason, str):
        raise TypeError("reason must be str")
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(not c.isprintable() for c in reason):
        raise ValueError(f"a reason is 1-{MAX_REASON} printable characters on one line")
    return reason


def read_revocations(path: str | os.PathLike[str]) -> list[Revocation]:
    """The entries of a revocation list (RevocationListError if it is not one)."""
    what = "a revocation list"
    text = read_text_file(path, what, _MAX_REVOCATION_LIST, RevocationListError,
                          not_text=NotARevocationList)
    lines = [line for line in text.split("\n") if not line.startswith("#")]
    while lines and not lines[0]:
        lines.pop(0)
    if not lines or lines[0] != REVOCATIONS_HEADER:
        raise NotARevocationList(f"is not {what}", path=path)
    entries: list[Revocation] = []
    block: list[str] = []
    for line in lines[1:] + [""]:
        if line:
            block.append(line)
            continue
        if not block:
            continue
        try:
            if len(block) != len(_ENTRY_FIELDS):
                raise ValueError("an entry does not have exactly the fields of a revocation")
            fields = {}
            for item, key in zip(block, _ENTRY_FIELDS, strict=True):
                if not item.startswith(key + ": "):
                    raise ValueError(f"field {key!r} is missing or out of place")
                fields[key] = item[len(key) + 2 :]
            key = _key_from(fields["site"], fields["recipient"], fields["verify-key"],
                            fields["fingerprint"])
            entries.append(Revocation(key, _check_reason(fields["reason"]),
                                      _parse_time(fields["revoked"])))
        except (ValueError, TypeError) as e:
            raise RevocationListError(f"is damaged ({e})", path=path) from None
        block = []
    return entries


def revoke(
    list_path: str | os.PathLike[str],
    key: PublicKey,
    reason: str,
    when: dt.datetime | None = None,
) -> tuple[Revocation, bool]:
    """Add ``key`` to the revocation list at ``list_path`` (created if missing).

    The file is replaced atomically.  Returns (entry, added): revoking a key
    that is already listed keeps the first entry and returns ``added`` False.
    """
    reason = _check_reason(reason)
    entries = read_revocations(list_path) if os.path.exists(list_path) else []
    for r in entries:
        if r.key.ed25519 == key.ed25519:
            return r, False
    entry = Revocation(key, reason, (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC))
    entries.append(entry)
    atomic_write_bytes(list_path, revocation_list_text(entries).encode("utf-8"))
    return entry, True


def load_revoked(items: Iterable[str | os.PathLike[str]]) -> list[PublicKey | str]:
    """What ``revoked=`` of verify()/import_bundle() takes, from what a person configures.

    Each item is a fingerprint (revokes exactly that key pair), a ``.pub``
    file (revokes its signing key) or a revocation list (revokes every key in
    it).  A file that is none of these is a KeyFileError naming it.
    """
    out: list[PublicKey | str] = []
    for item in items:
        text = os.fspath(item)
        if _FINGERPRINT.fullmatch(text.strip().lower()):
            out.append(text.strip().lower())
            continue
        try:
            out.extend(r.key for r in read_revocations(text))
        except NotARevocationList:
            out.append(load_public_key(text))
    return out


__all__ = [
    "NotARevocationList",
    "Revocation",
    "RevocationListError",
    "Rotation",
    "RotationError",
    "accept_rotation",
    "load_revoked",
    "parse_rotation",
    "read_revocations",
    "read_rotation",
    "revocation_list_text",
    "revoke",
    "rotate",
    "rotation_text",
]
