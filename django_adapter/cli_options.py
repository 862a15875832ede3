"""The options and the settings lookup that every Django command of ``bundle`` shares.

A module of its own so that the command modules (:mod:`django_adapter.cli`,
:mod:`django_adapter.cli_review`) import it and never each other in a circle.
"""

from pathlib import Path
from typing import Annotated

import typer

IdentityOpt = Annotated[
    Path | None, typer.Option("--identity", "-i", help="This machine's NAME.key (overrides IDENTITY).")
]
ToOpt = Annotated[
    list[Path] | None,
    typer.Option("--to", "-r", help="A recipient's NAME.pub, repeatable (overrides RECIPIENTS)."),
]
TrustOpt = Annotated[
    list[Path] | None,
    typer.Option("--trust", "-t", help="A trusted NAME.pub, repeatable (overrides TRUSTED)."),
]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="Database alias (overrides DATABASE).")
]
ForwardOpt = Annotated[
    Path | None,
    typer.Option("--forward", help="Copy accepted bundles, byte-identical, to this folder."),
]


def config(identity=None, to=None, trust=None, database=None, receipts_from=None):
    from django_adapter.conf import get_config

    return get_config(identity=identity, recipients=to, trusted=trust, database=database,
                      receipts_from=receipts_from)
