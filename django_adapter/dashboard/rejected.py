"""Files that arrived and were refused, with the reason written beside each.

The watched inbox moves a refused file to ``INBOX/rejected/`` and writes
``NAME.reason.txt`` (for a person) and ``NAME.reason.json`` (for scripts).  A
REST or upload-page file that turns out to be a fork of its sender's chain is
quarantined in the same folder the same way (``django_adapter.intake``); other
refused uploads are not kept (the sender still has the file and was told why).
The route of a quarantined fork is in the ledger; anything else there came
through the watched inbox.  This module reads the reason files back; it never
opens the bundles themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from bundlekit.inbox import REASON_JSON, REASON_TXT, REJECTED, is_candidate_name

#: A reason file larger than this is not read (it is ours, so it never is).
MAX_REASON_BYTES = 64 * 1024


@dataclass
class RejectedFile:
    name: str
    route: str
    size: int
    when: dt.datetime
    code: str
    reason: str


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_REASON_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def _reason(path: Path) -> tuple[str, str]:
    """(code, reason) from the reason files beside ``path``."""
    text = _read(path.with_name(path.name + REASON_JSON))
    if text:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return str(data.get("code") or ""), str(data.get("reason") or "")
    text = _read(path.with_name(path.name + REASON_TXT)).strip()
    first = text.splitlines()[0] if text else ""
    if first.startswith(path.name + ": "):  # "NAME: reason", as the inbox writes it
        first = first[len(path.name) + 2 :]
    return "", first or "no reason file beside it"


def rejected_files(inbox: Path, routes: dict[str, str] | None = None) -> list[RejectedFile]:
    """Every refused file in ``inbox/rejected/``, newest first.  ``routes``: {file
    name: route} the ledger knows (quarantined forks); other files came through
    the watched inbox."""
    routes = routes or {}
    out: list[RejectedFile] = []
    try:
        entries = list(os.scandir(Path(inbox) / REJECTED))
    except OSError:
        return out
    for entry in entries:
        if not is_candidate_name(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        code, reason = _reason(Path(entry.path))
        out.append(
            RejectedFile(
                name=entry.name,
                route=routes.get(entry.name, "watched inbox"),
                size=st.st_size,
                when=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
                code=code,
                reason=reason,
            )
        )
    out.sort(key=lambda r: (r.when, r.name), reverse=True)
    return out
