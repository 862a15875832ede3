"""``bundle keys ...``: rotate a site key, accept another site's rotation, revoke
keys (docs/SECURITY.md), and the key-file loaders every command shares.

Checking bundles against a revocation list is ``bundle verify --revoked``; there
is no second spelling of it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bundlekit.cli.app import app
from bundlekit.cli.output import JsonOpt, out, print_json
from bundlekit.errors import EXIT_USAGE, CommandFailed


def load_identities(paths: list[Path]):
    from bundlekit.keys import load_identity

    return [load_identity(p) for p in paths]


def load_publics(paths: list[Path] | None):
    from bundlekit.keys import load_public_key

    return [load_public_key(p) for p in paths or ()]


keys_app = typer.Typer(
    name="keys",
    help="Rotate a site key, accept another site's rotation, revoke keys.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(
    identity: Annotated[Path, typer.Option("--identity", "-i", help="The site's current NAME.key.")],
    dir: Annotated[
        Path | None, typer.Option("--dir", help="Folder for the new files (default: the old key's).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="File name stem (default: SITE-XXXX, XXXX from the new fingerprint).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Make a new key pair for the same site and a rotation statement signed by both keys.

    Give NEW.pub and NEW.rotation to every server that trusts the old key
    (`bundle keys accept`); then point the site's settings at NEW.key.
    """
    from bundlekit.rotation import rotate

    if dir is not None:
        dir.mkdir(parents=True, exist_ok=True)
    new, key_path, pub_path, rotation_path = rotate(identity, dir, name)
    info = {"site": new.site, "key": key_path, "pub": pub_path, "rotation": rotation_path,
            "fingerprint": new.fingerprint}
    if json_out:
        print_json(info)
        return
    out(f"wrote {key_path} (secret: the site's new key)")
    out(f"wrote {pub_path} (public)")
    out(f"wrote {rotation_path} (public: give it with the .pub to every server that trusts the old key)")
    out(f"fingerprint {new.fingerprint}")


@keys_app.command("accept")
def keys_accept(
    rotation: Annotated[Path, typer.Argument(help="The NAME.rotation statement.")],
    trust: Annotated[
        list[Path], typer.Option("--trust", "-t", help="A NAME.pub we trust now (the old key).")
    ],
    dir: Annotated[Path, typer.Option("--dir", help="Folder to write the new key's .pub into.")],
    revoked: Annotated[
        list[Path] | None,
        typer.Option("--revoked", help="A revocation list, .pub or fingerprint (repeatable)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a rotation statement against trusted keys; write the new key's .pub into DIR.

    Then add that .pub to the trusted keys (e.g. BUNDLEKIT['TRUSTED']).
    """
    from bundlekit.rotation import accept_rotation, load_revoked

    rot, pub_path = accept_rotation(
        rotation, load_publics(trust), dir, revoked=load_revoked(map(str, revoked or ()))
    )
    info = {"site": rot.new.site, "old": rot.old.fingerprint, "new": rot.new.fingerprint,
            "pub": pub_path}
    if json_out:
        print_json(info)
        return
    out(f"site {rot.new.site!r}: key {rot.old.fingerprint} hands over to {rot.new.fingerprint}")
    out(f"wrote {pub_path}: add it to the trusted keys (the old key stays trusted until you retire it)")


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[Path, typer.Argument(help="The NAME.pub of the key to revoke.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for people (e.g. 'laptop stolen').")],
    list_path: Annotated[
        Path, typer.Option("--list", help="The revocation list file (created if missing).")
    ] = Path("revoked.list"),
) -> None:
    """Add a key to a revocation list: its bundles, receipts and rotations are refused from now on.

    Data already imported stays. Use the list with --revoked or BUNDLEKIT['REVOKED'].
    """
    from bundlekit.keys import load_public_key
    from bundlekit.rotation import revoke

    pub = load_public_key(key)
    try:
        entry, added = revoke(list_path, pub, reason)
    except ValueError as exc:
        raise CommandFailed(f"--reason: {exc}", EXIT_USAGE) from None
    if added:
        out(f"revoked {pub.fingerprint} (site {pub.site!r}) in {list_path}")
    else:
        out(f"{pub.fingerprint} was already revoked in {list_path} ({entry.reason})")


@keys_app.command("revoked")
def keys_revoked(
    list_path: Annotated[Path, typer.Argument(help="A revocation list file.")],
    json_out: JsonOpt = False,
) -> None:
    """Show the keys in a revocation list."""
    from bundlekit.rotation import read_revocations

    entries = read_revocations(list_path)
    rows = [{"fingerprint": r.key.fingerprint, "site": r.key.site, "reason": r.reason,
             "revoked": r.revoked.isoformat()} for r in entries]
    if json_out:
        print_json(rows)
        return
    for r in rows:
        out(f"{r['fingerprint']}  {r['site']}  revoked {r['revoked']}: {r['reason']}")
