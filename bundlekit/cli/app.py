"""The ``bundle`` application: the typer app, its plugins, and ``main``.

Commands live in their own modules (:mod:`~bundlekit.cli.bundles`,
:mod:`~bundlekit.cli.keys`, :mod:`~bundlekit.cli.transport`,
:mod:`~bundlekit.cli.forward`) and add themselves to :data:`app`.  Commands that
need Django (export, import, watch, status, ...) come from plugins registered
under the ``bundlekit.cli`` entry-point group, so nothing here imports Django.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from bundlekit.cli.output import err, reflow_help
from bundlekit.errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, one_line

log = logging.getLogger(__name__)

app = typer.Typer(
    name="bundle",
    help="Seal, verify and open bundle files: signed, encrypted store-and-forward sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def bundlekit_version() -> str:
    # importlib.metadata is imported here, not at the top: it costs more than the
    # rest of `bundle --version` together.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bundlekit")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"bundlekit {bundlekit_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version_: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Seal, verify and open bundle files: signed, encrypted store-and-forward sync."""


_loaded = False


def mount_core() -> None:
    """Import the core command modules (each adds its commands to :data:`app`), in
    the order ``bundle --help`` lists them."""
    import importlib

    for name in ("bundles", "keys", "transport", "forward"):
        importlib.import_module(f"bundlekit.cli.{name}")


def load_commands() -> None:
    """Mount the core commands and then the plugins' (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    mount_core()
    load_plugins()
    reflow_help(app)


def load_plugins() -> None:
    """Add commands from installed plugins (the Django adapter adds export/import/...)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="bundlekit.cli"):
        try:
            register = ep.load()
        except ImportError as exc:  # e.g. Django not installed on a middleman laptop
            log.debug("plugin %s not loaded: %s", ep.name, exc)
            continue
        register(app)


def _asks_version(argv: list[str]) -> bool:
    """Whether ``--version`` comes among the options before the command word (and
    before any ``--help``): typer then prints the version and exits while it reads
    them, before any command is looked up, so the plugins need not be loaded (the
    entry-point scan and the Django adapter's modules are most of the cost)."""
    for arg in argv:
        if arg == "--version":
            return True
        if arg == "--help" or not arg.startswith("-"):
            return False
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every expected failure into one line and an exit code.

    Typer handles its own usage errors (exit 2, with usage help); everything the
    commands raise goes through :func:`bundlekit.errors.one_line`, the same
    mapping ``manage.py bundle`` uses, so no person ever sees a traceback.
    """
    if not _asks_version(sys.argv[1:] if argv is None else argv):
        load_commands()
    try:
        app(args=argv, prog_name="bundle")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_INVALID)
    except (Exception, KeyboardInterrupt) as exc:
        line, code = one_line(exc)
        if code == EXIT_INTERNAL and os.environ.get("BUNDLEKIT_DEBUG") == "1":
            raise
        err(line)
        return code
    return EXIT_OK


__all__ = ["app", "bundlekit_version", "load_commands", "load_plugins", "main"]
