"""``python manage.py bundle ...``: the same commands as ``bundle ...`` (django-typer).

Both spellings call the same functions in :mod:`django_adapter.cli`; here Django is
already set up by ``manage.py`` (which also owns ``--settings``), and bundlekit's
one-line errors become Django's ``CommandError`` so ``manage.py`` prints one line
and exits non-zero instead of a traceback.
"""

import functools

from django.core.management import CommandError
from django.db import DatabaseError
from django_typer.management import Typer

from bundlekit.cli import CommandFailed
from bundlekit.cli import verify as verify_command
from bundlekit.errors import BundleError
from django_adapter import cli

app = Typer(
    name="bundle",
    help="Sync by bundle files: export to a stick, import, watch an inbox, receipts, status.",
)


def one_line_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CommandFailed as exc:
            raise CommandError(str(exc), returncode=exc.code) from None
        except BundleError as exc:
            raise CommandError(str(exc), returncode=1) from None
        except DatabaseError as exc:
            raise CommandError(f"database error: {exc}", returncode=1) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise CommandError(f"{where}{exc.strerror or exc}", returncode=1) from None

    return wrapper


for _name, _func, _needs_django in cli.COMMANDS:
    app.command(_name)(one_line_errors(_func))
app.command("verify")(one_line_errors(verify_command))
