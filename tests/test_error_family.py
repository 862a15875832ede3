"""One exception family: every public exception of bundlekit and the Django adapter
is defined in bundlekit/errors.py and derives from BundleError; one_line() turns
each into the line and exit code both commands print."""

from __future__ import annotations

import errno
import importlib
import inspect
import pkgutil

import pytest

import bundlekit
import django_adapter
from bundlekit import errors
from bundlekit.errors import (
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_USAGE,
    BundleError,
    ChainError,
    CommandFailed,
    ConfigError,
    SyncError,
    one_line,
)

#: Internal signals the layer above maps to the family before anyone sees them:
#: bundlekit.age is a self-contained age implementation with its own small family
#: (AgeError -> NotARecipient, CorruptBundle, ...), and limits.LimitExceeded
#: becomes CorruptBundle or ReceiptCorrupt naming the file.
OWN_FAMILY = ("bundlekit.age", "bundlekit.limits")


def modules():
    for package in (bundlekit, django_adapter):
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations." in info.name or info.name.endswith("__main__"):
                continue
            yield info.name


def test_every_public_exception_is_in_errors_py_and_in_the_family():
    stray = []
    for name in modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == name and not attr.startswith("_")
                    and name != errors.__name__
                    and not name.startswith(OWN_FAMILY)):
                stray.append(f"{name}.{attr}")
    assert stray == []
    for attr, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == errors.__name__:
            assert issubclass(value, BundleError), attr


def test_old_import_paths_still_work():
    from bundlekit.rotation import RotationError
    from bundlekit.transport import TransferError
    from django_adapter.conf import ConfigError as conf_error
    from django_adapter.exceptions import SyncError as edc_sync_error
    from django_adapter.rest.auth import ApiError

    assert edc_sync_error is SyncError and conf_error is ConfigError
    assert all(issubclass(c, BundleError) for c in (RotationError, TransferError, ApiError))


@pytest.mark.parametrize(
    ("exc", "line", "code"),
    [
        (ChainError("outbox/a.bundle: seq 7 does not continue the chain"),
         "outbox/a.bundle: seq 7 does not continue the chain", EXIT_INVALID),
        (BundleError("is not a bundle", path="x.bundle"), "x.bundle: is not a bundle", EXIT_INVALID),
        (CommandFailed("NAME: bad", EXIT_USAGE), "NAME: bad", EXIT_USAGE),
        (FileNotFoundError(errno.ENOENT, "No such file", "k.key"), "k.key: no such file",
         EXIT_INVALID),
        (PermissionError(errno.EACCES, "Permission denied", "k.key"), "k.key: permission denied",
         EXIT_INVALID),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device", EXIT_INVALID),
        (KeyboardInterrupt(), "interrupted", 130),
    ],
)
def test_one_line_for_every_face(exc, line, code):
    assert one_line(exc) == (line, code)


def test_a_database_error_is_one_line_and_a_bug_is_exit_3():
    from django.db import OperationalError

    line, code = one_line(OperationalError("no such table: django_adapter_outgoingtransaction\nmore"))
    assert code == EXIT_INVALID and "\n" not in line
    assert line.startswith("database error: no such table") and "migrate" in line
    line, code = one_line(ZeroDivisionError("division by zero"))
    assert code == EXIT_INTERNAL and line.startswith("internal error: ZeroDivisionError")
