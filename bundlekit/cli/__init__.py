"""The ``bundle`` command: a thin layer over the library.

Every command calls one library function and turns its result or its
:class:`~bundlekit.errors.BundleError` into one line for a person (or JSON for a
script).  Nothing here decides anything the library does not; tests call the
library directly and drive this layer through ``typer``'s runner or a subprocess.

The package:

- :mod:`~bundlekit.cli.app`: the typer app, ``--version``, plugins, :func:`main`
- :mod:`~bundlekit.cli.output`: lines (escaped), JSON, tables, progress bars
- :mod:`~bundlekit.cli.bundles`: keygen, seal, verify, open, inspect, payload
- :mod:`~bundlekit.cli.keys`: keys rotate/accept/revoke/revoked
- :mod:`~bundlekit.cli.transport`: push, pull
- :mod:`~bundlekit.cli.forward`: forward

Commands that need Django (export, import, watch, status, ...) are added by
plugins registered under the ``bundlekit.cli`` entry-point group, so this
package never imports Django.
"""

from __future__ import annotations

from bundlekit.cli.app import app, load_commands, main, mount_core
from bundlekit.cli.bundles import read_json_lines, verify
from bundlekit.cli.keys import load_identities, load_publics
from bundlekit.cli.output import (
    JsonOpt,
    err,
    escape,
    interactive,
    on_terminal,
    out,
    plain_json,
    print_json,
    progress,
    table,
)
from bundlekit.errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, EXIT_USAGE, CommandFailed

mount_core()  # every core command is on `app` once the package is imported

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandFailed",
    "JsonOpt",
    "app",
    "err",
    "escape",
    "interactive",
    "load_commands",
    "load_identities",
    "load_publics",
    "main",
    "on_terminal",
    "out",
    "plain_json",
    "print_json",
    "progress",
    "read_json_lines",
    "table",
    "verify",
]
