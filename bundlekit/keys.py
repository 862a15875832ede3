"""Site identities and public keys, and the files that hold them (FORMAT.md §6).

An identity is two key pairs under one site name: X25519 (age, so bundles can
be sealed *for* the site) and Ed25519 (so the site can sign what it seals).
The ``.key`` file is a valid age identity file as it stands, so a server can
always fall back to ``age -d -i site.key``: age skips lines starting with
``#``, and our extra fields live in such tagged comment lines.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bundlekit import age
from bundlekit.age import bech32
from bundlekit.errors import BundleError, KeyFileError
from bundlekit.naming import safe_site

#: FORMAT.md §6.1: domain label of the fingerprint hash.
FINGERPRINT_LABEL = b"bundlekit.org/v1/fingerprint\n"
#: FORMAT.md §6.1: bytes of the hash shown, as hex in groups of four.
FINGERPRINT_BYTES = 16
#: FORMAT.md §6.2: Bech32 prefix of the Ed25519 signing secret (upper case, like age's).
SIGNING_KEY_HRP = "BUNDLEKIT-SIGNING-KEY-"
#: FORMAT.md §6.3: Bech32 prefix of the Ed25519 verify (public) key.
VERIFY_KEY_HRP = "bundlekit-verify-key-"
#: FORMAT.md §6.2: tagged comment lines of the .key file start with this.
KEY_TAG = "# bundlekit-"
#: FORMAT.md §6.3: first field line of a .pub file.
PUB_HEADER = "bundlekit-public-key: v1"
KEY_HEADER = "# bundlekit-key: v1"
KEY_SUFFIX = ".key"
PUB_SUFFIX = ".pub"
#: FORMAT.md §6.4: longest site name accepted.
MAX_SITE_NAME = 200
#: Key files are a few hundred bytes; anything much bigger is not one.
_MAX_KEY_FILE = 64 * 1024
_KEY_SIZE = 32


def _check_site(site: str) -> str:
    if not isinstance(site, str):
        raise TypeError("site name must be str")
    if not site or site != site.strip() or len(site) > MAX_SITE_NAME:
        raise ValueError(f"site name must be 1-{MAX_SITE_NAME} characters without outer spaces")
    if any(not c.isprintable() for c in site):
        raise ValueError("site name must not contain control characters or line breaks")
    return site


def _check_key(key: bytes, what: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != _KEY_SIZE:
        raise ValueError(f"{what} must be {_KEY_SIZE} bytes")
    return key


#: FORMAT.md §6.1: 16 bytes as lower-case hex in groups of 4 joined by "-" (the one
#: pattern every module checks a fingerprint against).
FINGERPRINT = re.compile(r"[0-9a-f]{4}(?:-[0-9a-f]{4}){7}")


def fingerprint_of(x25519_public: bytes, ed25519_public: bytes) -> str:
    """FORMAT.md §6.1: stable over both public keys, independent of the site name."""
    h = hashlib.sha256(FINGERPRINT_LABEL + x25519_public + ed25519_public).hexdigest()
    h = h[: FINGERPRINT_BYTES * 2]
    return "-".join(h[i : i + 4] for i in range(0, len(h), 4))


@dataclass(frozen=True)
class PublicKey:
    """What a site shares: its name, age recipient and signature verify key."""

    site: str
    x25519: bytes
    ed25519: bytes

    def __post_init__(self) -> None:
        _check_site(self.site)
        _check_key(self.x25519, "X25519 public key")
        _check_key(self.ed25519, "Ed25519 public key")

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint_of(self.x25519, self.ed25519)

    @cached_property
    def age_recipient(self) -> str:
        return age.encode_recipient(self.x25519)

    @property
    def verify_key(self) -> str:
        return bech32.encode(VERIFY_KEY_HRP, self.ed25519)

    def same_key(self, other: PublicKey) -> bool:
        """Same key pairs, whatever the site label says."""
        return hmac.compare_digest(self.x25519 + self.ed25519, other.x25519 + other.ed25519)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.ed25519).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"PublicKey(site={self.site!r}, fingerprint={self.fingerprint!r})"


@dataclass(frozen=True, repr=False)
class Identity:
    """A site's secret keys.  ``repr`` never shows them."""

    site: str
    x25519_secret: bytes
    ed25519_secret: bytes
    _signer: Ed25519PrivateKey = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _check_site(self.site)
        _check_key(self.x25519_secret, "X25519 secret key")
        _check_key(self.ed25519_secret, "Ed25519 secret key")
        object.__setattr__(self, "_signer", Ed25519PrivateKey.from_private_bytes(self.ed25519_secret))

    @classmethod
    def generate(cls, site: str) -> Identity:
        return cls(
            site,
            X25519PrivateKey.generate().private_bytes_raw(),
            Ed25519PrivateKey.generate().private_bytes_raw(),
        )

    @cached_property
    def public(self) -> PublicKey:
        return PublicKey(
            self.site,
            age.public_from_secret(self.x25519_secret),
            self._signer.public_key().public_bytes_raw(),
        )

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    @property
    def age_identity(self) -> str:
        return age.encode_identity(self.x25519_secret)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 over ``message`` as given; callers add their own domain label."""
        return self._signer.sign(message)

    def __repr__(self) -> str:
        return f"Identity(site={self.site!r}, fingerprint={self.fingerprint!r})"


# ---------------------------------------------------------------------------
# Key files (FORMAT.md §6.2, §6.3)


def key_file_text(identity: Identity) -> str:
    pub = identity.public
    return (
        "# bundlekit identity: SECRET. Anyone holding this file can read bundles\n"
        "# sealed for this site and sign bundles in its name. Keep it off shared sticks.\n"
        "# It is also a standard age identity file: age -d -i THIS_FILE payload.age\n"
        f"{KEY_HEADER}\n"
        f"{KEY_TAG}site: {identity.site}\n"
        f"{KEY_TAG}fingerprint: {pub.fingerprint}\n"
        f"{KEY_TAG}recipient: {pub.age_recipient}\n"
        f"{KEY_TAG}verify-key: {pub.verify_key}\n"
        f"{KEY_TAG}signing-key: {bech32.encode(SIGNING_KEY_HRP, identity.ed25519_secret)}\n"
        f"{identity.age_identity}\n"
    )


def pub_file_text(pub: PublicKey) -> str:
    return (
        "# bundlekit public key: share it freely. Servers use it to check who sealed a\n"
        "# bundle (verify-key) and sites use it to seal bundles for this one (recipient).\n"
        f"{PUB_HEADER}\n"
        f"site: {pub.site}\n"
        f"fingerprint: {pub.fingerprint}\n"
        f"recipient: {pub.age_recipient}\n"
        f"verify-key: {pub.verify_key}\n"
    )


def write_keypair(
    identity: Identity, directory: str | os.PathLike[str], name: str | None = None
) -> tuple[str, str]:
    """Write ``NAME.key`` (mode 0600) and ``NAME.pub``; refuse to overwrite either.

    ``name`` defaults to the sanitised site name.  A key lost to an overwrite
    cannot be recovered, so existing files are an error, never replaced.
    """
    stem = safe_site(name if name is not None else identity.site)
    key_path = os.path.join(os.fspath(directory), stem + KEY_SUFFIX)
    pub_path = os.path.join(os.fspath(directory), stem + PUB_SUFFIX)
    for p in (key_path, pub_path):
        if os.path.lexists(p):
            raise KeyFileError("already exists; refusing to overwrite a key file", path=p)
    write_new_file(key_path, key_file_text(identity), 0o600)
    try:
        write_new_file(pub_path, pub_file_text(identity.public))
    except KeyFileError:
        os.unlink(key_path)
        raise
    return key_path, pub_path


def generate_keypair(
    site: str, directory: str | os.PathLike[str], name: str | None = None
) -> tuple[Identity, str, str]:
    """A new identity for ``site``, written with :func:`write_keypair`."""
    identity = Identity.generate(site)
    key_path, pub_path = write_keypair(identity, directory, name)
    return identity, key_path, pub_path


def write_new_file(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Create ``path`` holding ``text``, fsynced, with exactly ``mode``; never overwrite.

    KeyFileError naming the file if it exists or cannot be written; a file
    that could not be written whole is removed.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError("already exists; refusing to overwrite it", path=path) from None
    except OSError as e:
        raise KeyFileError(f"could not be created: {e.strerror or e}", path=path) from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)  # the umask must not loosen or matter
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise KeyFileError(f"could not be written: {e.strerror or e}", path=path) from e


def read_text_file(
    path: str | os.PathLike[str],
    what: str,
    limit: int = _MAX_KEY_FILE,
    error: type[BundleError] = KeyFileError,
    not_text: type[BundleError] | None = None,
) -> str:
    """The UTF-8 text of a small file that should be ``what`` (``a public key file (.pub)``).

    Every failure is ``error`` naming the file; a file that is not UTF-8 text
    is ``not_text`` when given (a caller may want to tell that case apart).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"does not exist ({what} was expected)", path=path) from None
    except IsADirectoryError:
        raise error(f"is a folder, not {what}", path=path) from None
    except OSError as e:
        raise error(f"cannot be read ({e.strerror or e})", path=path) from None
    if len(data) > limit:
        raise error(f"is too large to be {what}", path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise (not_text or error)(f"is not {what}", path=path) from None


def _fields(lines: Iterable[str], prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if line.startswith(prefix) and ": " in line:
            k, v = line[len(prefix) :].split(": ", 1)
            if k in out:
                raise ValueError(f"field {k!r} appears twice")
            out[k] = v
    return out


def load_identity(path: str | os.PathLike[str]) -> Identity:
    """Read a ``.key`` file; KeyFileError for a .pub, garbage, or a missing file."""
    expected = "a secret key file (.key)"
    text = read_text_file(path, expected)
    lines = text.splitlines()
    if PUB_HEADER in lines:
        raise KeyFileError(f"is a public key (.pub), but {expected} was expected", path=path)
    if KEY_HEADER not in lines:
        if any(line.startswith("AGE-SECRET-KEY-1") for line in lines):
            raise KeyFileError(
                "is a plain age key without a bundlekit signing key; "
                "create site keys with bundlekit",
                path=path,
            )
        raise KeyFileError(f"is not {expected}", path=path)
    try:
        fields = _fields(lines, KEY_TAG)
        secrets_ = [line for line in lines if line and not line.startswith("#")]
        if len(secrets_) != 1:
            raise ValueError("expected exactly one AGE-SECRET-KEY line")
        hrp, ed_secret = bech32.decode(fields["signing-key"])
        if hrp != SIGNING_KEY_HRP:
            raise ValueError("bad signing-key")
        identity = Identity(fields["site"], age.decode_identity(secrets_[0].strip()), ed_secret)
    except (KeyError, ValueError, TypeError) as e:
        raise KeyFileError(f"is damaged or incomplete ({e})", path=path) from None
    pub = identity.public
    for k, want in (("fingerprint", pub.fingerprint), ("recipient", pub.age_recipient),
                    ("verify-key", pub.verify_key)):
        if k in fields and fields[k] != want:
            raise KeyFileError(f"is inconsistent: its {k} does not match its secret keys", path=path)
    return identity


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a ``.pub`` file; KeyFileError for a .key, garbage, or a missing file."""
    expected = "a public key file (.pub)"
    text = read_text_file(path, expected)
    lines = text.splitlines()
    if KEY_HEADER in lines or any(line.startswith("AGE-SECRET-KEY-1") for line in lines):
        raise KeyFileError(
            f"is a secret key (.key), but {expected} was expected; "
            "never hand out or copy the .key file",
            path=path,
        )
    if PUB_HEADER not in lines:
        raise KeyFileError(f"is not {expected}", path=path)
    try:
        fields = _fields((line for line in lines if not line.startswith("#")), "")
        hrp, ed_pub = bech32.decode(fields["verify-key"])
        if hrp != VERIFY_KEY_HRP:
            raise ValueError("bad verify-key")
        pub = PublicKey(fields["site"], age.decode_recipient(fields["recipient"]), ed_pub)
    except (KeyError, ValueError, TypeError) as e:
        raise KeyFileError(f"is damaged or incomplete ({e})", path=path) from None
    if "fingerprint" in fields and fields["fingerprint"] != pub.fingerprint:
        raise KeyFileError("is inconsistent: its fingerprint does not match its keys", path=path)
    return pub
