"""``python manage.py bundle ...``: the same commands as ``bundle ...`` (django-typer).

Both spellings call the same functions (:mod:`django_adapter.cli` and the core's
``verify`` and ``forward``); here Django is already set up by ``manage.py``
(which also owns ``--settings``).  Every failure goes through
:func:`bundlekit.errors.one_line`, the mapping ``bundle`` uses, and becomes
Django's ``CommandError``: one line and the same exit code, never a traceback.
"""

import functools
import os

import typer
from django.core.management import CommandError
from django_typer.management import TyperCommand

from bundlekit.cli.bundles import verify
from bundlekit.cli.forward import forward
from bundlekit.cli.output import escape, reflow_help
from bundlekit.errors import EXIT_INTERNAL, one_line
from django_adapter import cli

# The command class is written out: ``app = Typer(...)`` at module level would have
# django-typer find this module with inspect.getmodule(), which resolves the path
# of every loaded module (7% of a whole `manage.py bundle import` run).


class Command(
    TyperCommand,
    name="bundle",
    help="Sync by bundle files: export to a stick, import, watch an inbox, receipts, status.",
):
    pass


app = Command.typer_app


def _typer_flow() -> tuple[type[BaseException], ...]:
    """typer's own exits and usage errors, which typer handles: their classes
    differ between typer releases (click's before 0.17, typer's own since)."""
    import importlib

    found = [CommandError, typer.Exit, typer.Abort]
    for module, name in (("typer", "TyperException"), ("click", "ClickException"),
                         ("click.exceptions", "Exit"), ("click.exceptions", "Abort")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


TYPER_FLOW = _typer_flow()


def one_line_errors(func):
    """``func`` with every exception turned into ``CommandError`` by :func:`one_line`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TYPER_FLOW:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            line, code = one_line(exc)
            if code == EXIT_INTERNAL and os.environ.get("BUNDLEKIT_DEBUG") == "1":
                raise
            raise CommandError(escape(line), returncode=code) from None

    return wrapper


for _name, _func, *_ in cli.COMMANDS:
    # manage.py read --settings wherever it was; accept it after the subcommand too.
    app.command(_name)(one_line_errors(cli.with_settings(_func)))
for _name, _func in [("verify", verify), ("forward", forward)]:
    app.command(_name)(one_line_errors(_func))
reflow_help(app)
