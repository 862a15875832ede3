"""The ``bundle`` command: a thin layer over the library.

Every command calls one library function and turns its result or its
:class:`~bundlekit.errors.BundleError` into one line for a person (or JSON for a
script). Nothing here decides anything the library does not; tests call the
library directly and drive this layer through ``typer``'s runner or a subprocess.

Commands that need Django (export, import, watch, status, ...) are added by
plugins registered under the ``bundlekit.cli`` entry-point group, so this module
never imports Django.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from bundlekit.errors import BundleError
from bundlekit.naming import bundle_files

log = logging.getLogger(__name__)

app = typer.Typer(
    name="bundle",
    help="Seal, verify and open bundle files: signed, encrypted store-and-forward sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Exit codes, stable for scripts.
EXIT_OK = 0
EXIT_INVALID = 1  # a file was rejected, or something failed
EXIT_USAGE = 2  # the command line itself is wrong (typer/click's own code)
EXIT_INTERNAL = 3  # a bug in bundlekit: please report it


class CommandFailed(Exception):
    """Raised inside a command to end it with one line and a non-zero exit."""

    def __init__(self, message: str, code: int = EXIT_INVALID):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- output


def err(message: str) -> None:
    """One line on stderr: the only thing a person sees when something is wrong."""
    typer.echo(f"bundle: {message}", err=True)


def out(message: str = "") -> None:
    typer.echo(message)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=plain_json))


def plain_json(value: Any) -> Any:
    """JSON for reports (``--json``): readable scalars, not the typed record form."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, UUID | Decimal | Path):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def interactive() -> bool:
    """Progress bars only for a person watching a terminal; scripts get quiet output."""
    return sys.stderr.isatty() and os.environ.get("BUNDLEKIT_NO_PROGRESS") != "1"


@contextmanager
def progress(
    description: str, total: int | None = None, unit: str = "records"
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich bar on a terminal, nothing otherwise.

    ``unit`` names what ``n`` counts: ``"records"`` (the rate reads records/s),
    ``"bytes"`` (sizes and MB/s) or another plural noun such as ``"files"``.
    """
    if not interactive():
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if unit == "bytes":
        done_column = DownloadColumn()

        def per_second(speed: float) -> str:
            return f"{speed / 1e6:,.1f} MB/s"

    else:
        done_column = MofNCompleteColumn()

        def per_second(speed: float) -> str:
            return f"{speed:,.0f} {unit}/s" if speed >= 10 else f"{speed:.1f} {unit}/s"

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        done_column,
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    ]
    # print() output meanwhile goes above the bar only when stdout is that terminal too;
    # stdout sent to a file or a pipe stays there.
    with Progress(
        *columns,
        transient=True,
        console=_stderr_console(),
        redirect_stdout=sys.stdout.isatty(),
    ) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            if speed:
                bar.update(task, rate=per_second(speed))

        yield advance


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


# --------------------------------------------------------------------------- keys


def load_identities(paths: list[Path]):
    from bundlekit.keys import load_identity

    return [load_identity(p) for p in paths]


def load_publics(paths: list[Path] | None):
    from bundlekit.keys import load_public_key

    return [load_public_key(p) for p in paths or ()]


# --------------------------------------------------------------------------- commands


@app.command()
def keygen(
    name: Annotated[str, typer.Argument(help="Site or server name, e.g. 'site-a' or 'central'.")],
    dir: Annotated[
        Path, typer.Option("--dir", help="Folder to write NAME.key and NAME.pub.")
    ] = Path("."),
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a key pair: NAME.key (secret, mode 0600) and NAME.pub (share it).

    NAME.key is also an age identity file: `age -d -i NAME.key` reads payloads.
    """
    from bundlekit.keys import Identity, write_keypair

    try:
        identity = Identity.generate(name)
    except ValueError as exc:
        raise CommandFailed(f"NAME: {exc}", EXIT_USAGE) from None
    dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = write_keypair(identity, dir, name=name)
    info = {
        "site": name,
        "key": str(key_path),
        "pub": str(pub_path),
        "fingerprint": identity.public.fingerprint,
        "age_recipient": identity.public.age_recipient,
    }
    if json_out:
        print_json(info)
    else:
        out(f"wrote {key_path} (secret: keep it on this machine)")
        out(f"wrote {pub_path} (public: give it to whoever must trust or write to {name})")
        out(f"fingerprint {info['fingerprint']}")


def read_json_lines(stream) -> Iterator[dict]:
    """Records from JSON lines, typed values in the documented JSON form."""
    from bundlekit.records import from_jsonable

    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            record = from_jsonable(json.loads(line))
        except (ValueError, TypeError) as exc:
            raise CommandFailed(f"stdin line {number}: not a JSON record ({exc})") from None
        if not isinstance(record, dict):
            raise CommandFailed(f"stdin line {number}: a record must be a JSON object")
        yield record


def chain_state_path(identity_path: Path) -> Path:
    return identity_path.with_suffix(".chain")


def load_chain(path: Path):
    """The sender's last sealed bundle, kept beside its key so sequence numbers go on."""
    from bundlekit.writer import ChainLink

    if not path.exists():
        return ChainLink(seq=0, digest=None)
    try:
        data = json.loads(path.read_text())
        digest = bytes.fromhex(data["digest"]) if data.get("digest") else None
        return ChainLink(seq=int(data["seq"]), digest=digest)
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandFailed(f"{path}: chain state file is damaged ({exc})") from None


def save_chain(path: Path, seq: int, digest: bytes) -> None:
    from bundlekit.fsutil import atomic_write_bytes

    data = json.dumps({"seq": seq, "digest": digest.hex()}, indent=2).encode() + b"\n"
    atomic_write_bytes(path, data)


@app.command()
def seal(
    identity: Annotated[Path, typer.Option("--identity", "-i", help="The sender's NAME.key.")],
    to: Annotated[
        list[Path], typer.Option("--to", "-r", help="A recipient's NAME.pub (repeat for several).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write bundles into.")],
    max_bytes: Annotated[
        int | None, typer.Option("--max-bytes", help="Roll over to a new bundle below this size.")
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Chain state file (default: beside the key, NAME.chain)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Seal JSON-line records from stdin into the sender's next bundle(s); print their paths."""
    from bundlekit.writer import DEFAULT_MAX_BYTES
    from bundlekit.writer import seal as seal_records

    ident = load_identities([identity])[0]
    recipients = load_publics(to)
    if not recipients:
        raise CommandFailed("give at least one --to recipient (NAME.pub)", EXIT_USAGE)
    if not out_dir.is_dir():
        raise CommandFailed(f"{out_dir}: no such folder (is the stick mounted?)")
    state_path = state or chain_state_path(identity)
    after = load_chain(state_path)

    def on_sealed(sealed) -> None:
        save_chain(state_path, sealed.manifest.seq, sealed.digest)

    with progress("sealing") as advance:

        def counted(records):
            for record in records:
                advance(1)
                yield record

        sealed = seal_records(
            counted(read_json_lines(sys.stdin)),
            identity=ident,
            recipients=recipients,
            out_dir=out_dir,
            after=after,
            max_bytes=max_bytes or DEFAULT_MAX_BYTES,
            on_sealed=on_sealed,
        )
    if json_out:
        print_json([describe(s.path, s.manifest, s.digest) for s in sealed])
        return
    if not sealed:
        err("no records on stdin: nothing sealed")
        return
    for s in sealed:
        out(str(s.path))


def describe(path: Path, manifest, digest: bytes | None = None) -> dict:
    info = {"file": str(path), "manifest": manifest_dict(manifest)}
    if digest is not None:
        info["digest"] = digest.hex()
    return info


def manifest_dict(manifest) -> dict:
    if hasattr(manifest, "to_dict"):
        data = manifest.to_dict()
    else:
        import dataclasses

        data = dataclasses.asdict(manifest)
    return json.loads(json.dumps(data, default=plain_json))


@app.command()
def verify(
    files: Annotated[list[Path], typer.Argument(help="Bundle files or folders of bundles.")],
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", "-t", help="Accept only senders with these NAME.pub keys."),
    ] = None,
    revoked: Annotated[
        list[str] | None,
        typer.Option(
            "--revoked",
            help="Refuse keys revoked here: a revocation list, a NAME.pub or a fingerprint.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check signature, chain fields, sizes and digests. No decryption key needed.

    One line per file; exit 0 only if every file is valid.
    """
    from bundlekit.reader import verify as verify_bundle
    from bundlekit.rotation import load_revoked

    trusted = load_publics(trust) if trust else None
    revoked_keys = load_revoked(revoked or ())
    targets = bundle_files(files)
    if not targets:
        raise CommandFailed("no bundle files found in " + ", ".join(map(str, files)))
    results = []
    failed = 0
    for path in targets:
        size = path.stat().st_size if path.is_file() else 0
        # verify() streams the payload through SHA-256: a bar per file, closed before
        # its line is printed (as push does).
        with progress(f"verifying {path.name}", total=size, unit="bytes") as advance:
            try:
                vb = verify_bundle(path, trusted=trusted, revoked=revoked_keys)
            except BundleError as exc:
                failed += 1
                exc.with_path(path)
                results.append(
                    {"file": str(path), "valid": False, "error": exc.code, "reason": exc.reason}
                )
                line = f"INVALID {path}: {exc.reason}"
            except OSError as exc:
                failed += 1
                results.append(
                    {
                        "file": str(path),
                        "valid": False,
                        "error": "unreadable",
                        "reason": str(exc.strerror or exc),
                    }
                )
                line = f"INVALID {path}: cannot read it ({exc.strerror or exc})"
            else:
                m = vb.manifest
                info = describe(path, m, vb.digest)
                info["valid"] = True
                # Without --trust only the signature is checked, not who made it.
                info["sender_checked"] = trusted is not None
                results.append(info)
                line = f"OK      {path}: site {m.sender.site} seq {m.seq}, {m.record_count} records, "
                if trusted is not None:
                    line += f"signed by trusted key {vb.sender.fingerprint}"
                else:
                    line += (
                        f"signature valid (key {vb.sender.fingerprint}); sender NOT checked "
                        "against any trusted key (give --trust NAME.pub)"
                    )
            advance(size)
        if not json_out:
            out(line)
    if json_out:
        print_json(results)
    if failed:
        raise typer.Exit(EXIT_INVALID)


@app.command("open")
def open_(
    file: Annotated[Path, typer.Argument(help="The bundle to read.")],
    identity: Annotated[
        list[Path], typer.Option("--identity", "-i", help="A recipient's NAME.key (repeatable).")
    ],
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", "-t", help="Accept only senders with these NAME.pub keys."),
    ] = None,
) -> None:
    """Verify, decrypt and print the records as JSON lines (typed values in the JSON form)."""
    from bundlekit.reader import open_bundle
    from bundlekit.records import to_jsonable

    identities = load_identities(identity)
    trusted = load_publics(trust) if trust else None
    write = sys.stdout.write
    with open_bundle(file, identities=identities, trusted=trusted) as bundle:
        with progress("reading", total=bundle.manifest.record_count) as advance:
            for record in bundle:
                write(json.dumps(to_jsonable(record), ensure_ascii=False, separators=(",", ":")))
                write("\n")
                advance(1)
    sys.stdout.flush()


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="The bundle to describe.")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the manifest (clear text; it is checked with `bundle verify`, not here)."""
    from bundlekit.reader import read_manifest

    manifest = read_manifest(file)
    data = manifest_dict(manifest)
    if json_out:
        print_json({"file": str(file), "manifest": data})
        return
    out(str(file))
    width = max(len(k) for k in data)
    for key in sorted(data):
        value = data[key]
        if isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True)
        out(f"  {key:<{width}}  {value}")


@app.command()
def payload(file: Annotated[Path, typer.Argument(help="The bundle.")]) -> None:
    """Write the encrypted payload (a standard age file) to stdout.

    Recover records with standard tools: bundle payload F | age -d -i KEY | zstd -d
    """
    from bundlekit.reader import copy_payload, verify

    if sys.stdout.isatty():
        raise CommandFailed(
            "refusing to write binary data to a terminal; redirect to a file or pipe"
        )
    # Check first: once bytes are in a pipe they cannot be taken back.
    verify(file)
    copy_payload(file, sys.stdout.buffer)
    sys.stdout.buffer.flush()


# --------------------------------------------------------------------------- keys: rotation and revocation
# BEGIN keys block (bundle keys rotate/accept/revoke/revoked/verify; docs/SECURITY.md).
# Everything between BEGIN and END belongs to this block; it calls bundlekit.rotation.

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
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
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
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
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
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
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


@keys_app.command("verify")
def keys_verify(
    files: Annotated[list[Path], typer.Argument(help="Bundle files or folders of bundles.")],
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", "-t", help="Accept only senders with these NAME.pub keys."),
    ] = None,
    revoked: Annotated[
        list[Path] | None,
        typer.Option("--revoked", help="A revocation list, .pub or fingerprint (repeatable)."),
    ] = None,
) -> None:
    """`bundle verify` (which takes --revoked too): refuse bundles signed by revoked keys."""
    verify(files, trust=trust, revoked=[str(r) for r in revoked or ()], json_out=False)


# END keys block


# BEGIN transport block (push/pull over HTTP; see docs/REST.md)


def _push_line(r) -> str:
    if not r.ok:
        return f"FAILED   {r.path}: {r.reason}"
    report = r.answer.get("report") or {}
    where = f"site {r.answer.get('site')} seq {r.answer.get('seq')}"
    if r.status == "imported":
        counts = ", ".join(
            f"{report.get(k, 0)} {k}" for k in ("applied", "duplicate", "stale", "conflict", "failed")
        )
        gaps = report.get("missing_seqs") or []
        tail = f"; waiting for seq {', '.join(map(str, gaps))}" if gaps else ""
        return f"IMPORTED {r.path}: {where}, {counts}{tail}"
    if r.status == "queued":
        return f"QUEUED   {r.path}: {where}, in the server's inbox"
    return f"HELD     {r.path}: {where}, already held by the server"


@app.command()
def push(
    url: Annotated[str, typer.Argument(help="The server's bundles URL, e.g. http://hub:8000/bundles/")],
    files: Annotated[list[Path], typer.Argument(help="Bundle files or folders of bundles.")],
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="BUNDLEKIT_TOKEN", help="Bearer token (or BUNDLEKIT_TOKEN)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Upload bundles to a server; resumes after a dropped connection.

    One line per file; exit 0 only if the server holds every file afterwards.
    """
    from bundlekit.transport import push as push_bundles

    targets = bundle_files(files)
    if not targets:
        raise CommandFailed("no bundle files found in " + ", ".join(map(str, files)))
    results = []
    for path in targets:
        total = path.stat().st_size if path.is_file() else None
        with progress(f"pushing {path.name}", total=total, unit="bytes") as advance:
            try:
                results.extend(push_bundles(url, [path], token=token, progress=advance))
            except ValueError as exc:
                raise CommandFailed(str(exc), EXIT_USAGE) from None
        if not json_out:
            out(_push_line(results[-1]))
    if json_out:
        print_json([r.to_dict() for r in results])
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_INVALID)


@app.command()
def pull(
    url: Annotated[str, typer.Argument(help="The bundles URL of the machine to pull from.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to download bundles into.")],
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="BUNDLEKIT_TOKEN", help="Bearer token (or BUNDLEKIT_TOKEN)."),
    ] = None,
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", "-t", help="Keep only bundles signed by these NAME.pub keys."),
    ] = None,
    receipts: Annotated[
        bool, typer.Option("--receipts", help="Download the server's receipts instead of bundles.")
    ] = False,
    site: Annotated[
        str | None, typer.Option("--site", help="With --receipts: only those for this site.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Download the bundles waiting in a machine's outbox; each is verified before it is kept.

    Files already in --out with the same SHA-256 are skipped.  With --receipts,
    fetch the server's receipts; `bundle import DIR` then checks and applies them.
    """
    from bundlekit.transport import TransferError, pull_each

    trusted = load_publics(trust) if trust else None
    with progress("pulling", unit="bytes") as advance:
        try:
            results = pull_each(url, out_dir, token=token, trusted=trusted, progress=advance,
                                receipts=receipts, site=site)
        except ValueError as exc:
            raise CommandFailed(str(exc), EXIT_USAGE) from None
        except TransferError as exc:
            raise CommandFailed(exc.reason) from None
    if json_out:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            if r.status == "pulled":
                out(f"PULLED   {r.path} ({r.size} bytes)")
            elif r.status == "present":
                out(f"PRESENT  {r.path}: already here, same SHA-256")
            else:
                out(f"FAILED   {r.name}: {r.reason}")
        if not results:
            out("no receipts on the server" if receipts else "nothing waiting in the outbox")
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_INVALID)


# END transport block


# --------------------------------------------------------------------------- entry


def load_plugins() -> None:
    """Add commands from installed plugins (the Django adapter adds export/import/...)."""
    for ep in entry_points(group="bundlekit.cli"):
        try:
            register = ep.load()
        except ImportError as exc:  # e.g. Django not installed on a middleman laptop
            log.debug("plugin %s not loaded: %s", ep.name, exc)
            continue
        register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every expected failure into one line and an exit code.

    Typer handles its own usage errors (exit 2, with usage help); everything the
    commands raise is mapped here so no person ever sees a traceback.
    """
    load_plugins()
    try:
        app(args=argv, prog_name="bundle")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_INVALID)
    except CommandFailed as exc:
        err(str(exc))
        return exc.code
    except BundleError as exc:
        err(str(exc))
        return EXIT_INVALID
    except FileNotFoundError as exc:
        err(f"{exc.filename}: no such file")
        return EXIT_INVALID
    except PermissionError as exc:
        err(f"{exc.filename}: permission denied")
        return EXIT_INVALID
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        err(f"{where}{exc.strerror or exc}")
        return EXIT_INVALID
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("BUNDLEKIT_DEBUG") == "1":
            raise
        err(f"internal error: {type(exc).__name__}: {exc} (set BUNDLEKIT_DEBUG=1 for details)")
        return EXIT_INTERNAL
    return EXIT_OK
