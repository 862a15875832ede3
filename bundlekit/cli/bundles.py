"""``bundle keygen``, ``seal``, ``verify``, ``open``, ``inspect``, ``payload``: the
commands that make and read bundle files with bundlekit alone (no Django).

Each calls one library function and turns its result into lines for a person or
JSON for a script (``--json``); errors are the :mod:`bundlekit.errors` family,
printed as one line by :func:`bundlekit.cli.app.main`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from bundlekit.cli.app import app
from bundlekit.cli.keys import load_identities, load_publics
from bundlekit.cli.output import JsonOpt, err, out, plain_json, plural, print_json, progress
from bundlekit.errors import EXIT_INVALID, EXIT_USAGE, BundleError, CommandFailed
from bundlekit.naming import bundle_files


@app.command()
def keygen(
    name: Annotated[str, typer.Argument(help="Site or server name, e.g. 'site-a' or 'central'.")],
    dir: Annotated[
        Path, typer.Option("--dir", help="Folder to write NAME.key and NAME.pub.")
    ] = Path("."),
    json_out: JsonOpt = False,
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
    """Records from JSON lines, typed values in the documented JSON form, for seal():
    typed values come already in their packed form (records.packable_from_jsonable)."""
    from bundlekit.records import packable_from_jsonable

    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            record = packable_from_jsonable(json.loads(line))
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
    json_out: JsonOpt = False,
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


def record_kinds(manifest) -> tuple[int | None, int | None]:
    """(transactions, file chunks) of a bundle, from its manifest alone.

    ``export`` and ``import`` count transactions; a manifest's ``record_count``
    also counts the chunk records of files (FORMAT.md §5.5), which have no kind.
    So the records its ``kinds`` count are the transactions and the others are
    file chunks.  A bundle whose manifest counts no kind at all (records sealed
    without a ``model``, or a bundle of file chunks only) cannot be told apart:
    (None, None)."""
    kinds = sum(manifest.kinds.values())
    if not kinds and manifest.record_count:
        return None, None
    return kinds, manifest.record_count - kinds


def counted(manifest) -> str:
    """``12 transactions and 7 file chunks`` (or ``12 transactions``, or ``N records``
    when the manifest cannot tell: :func:`record_kinds`)."""
    transactions, chunks = record_kinds(manifest)
    if transactions is None:
        return plural(manifest.record_count, "record")
    text = plural(transactions, "transaction")
    return f"{text} and {plural(chunks, 'file chunk')}" if chunks else text


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
    json_out: JsonOpt = False,
) -> None:
    """Check signature, chain fields, sizes and digests. No decryption key needed.

    One line per file; exit 0 only if every file is valid.  Records are counted
    as export and import count them, transactions, and beside them the chunk
    records of files the bundle carries (from the manifest: the records of a
    kind are transactions, the others file chunks).
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
                transactions, chunks = record_kinds(m)
                info["transactions"], info["file_chunks"] = transactions, chunks
                results.append(info)
                line = f"OK      {path}: site {m.sender.site} seq {m.seq}, {counted(m)}, "
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
    json_out: JsonOpt = False,
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

