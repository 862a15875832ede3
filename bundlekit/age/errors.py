"""The age error family.

Each failure class has its own type so the bundle layer can map it to a
:mod:`bundlekit.errors` class (and tests can match on it) without reading
message text.  These errors do not know file names: the layer above does.
"""

from __future__ import annotations


class AgeError(Exception):
    """Base class: the age file we were given is not acceptable."""


class NoIdentityMatch(AgeError):
    """None of the identities can unwrap the file key: sealed for someone else."""


class HeaderError(AgeError):
    """The header is malformed, or its MAC does not match (tampered)."""


class PayloadError(AgeError):
    """A payload chunk fails to authenticate, or the payload is malformed."""


class TruncatedPayload(PayloadError):
    """The input ends before the final chunk: a half-copied file."""
