"""The upload page's import: a file from the browser goes the way a REST upload
or an inbox file goes, and its report comes back for the page.

The browser's file name is never used as a path: the bytes are written to a
private folder under a name of ours, then handed to the server's one intake
(:func:`django_adapter.intake.take_in`, route ``"upload"``, staged), which
verifies, deduplicates, imports, keeps the file in ``INBOX/done/`` (or a fork in
``INBOX/rejected/``) and writes the sender's receipt at once, exactly as for a
REST upload.  A refused file is not kept: the person uploading still has it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bundlekit.naming import bundle_name
from bundlekit.reader import verify
from django_adapter.conf import Config

ROUTE = "upload"
CHUNK = 1024 * 1024


def _staging_dir(config: Config) -> Path | None:
    """Beside the inbox when it exists (same file system: the intake can rename)."""
    parent = config.inbox.parent
    return parent if parent.is_dir() else None


def shown_name(name: str) -> str:
    """The browser's name for the file, for the report only (never a path)."""
    base = os.path.basename((name or "").replace("\\", "/"))
    return base[:200] or "(no name)"


def take_in_upload(uploaded, config: Config) -> dict[str, Any]:
    """Import one ``UploadedFile``; its report as a dict (``FileReport.to_dict()``).

    Raises the BundleError family for a file that is refused (nothing is kept),
    ``ConfigError`` for the server's own settings, ``DatabaseError``/``OSError``
    when the server cannot take it now.
    """
    with tempfile.TemporaryDirectory(prefix=".bundlekit-upload-", dir=_staging_dir(config)) as tmp:
        staged = Path(tmp) / "upload.bundle"
        with open(staged, "xb") as out:
            for chunk in uploaded.chunks(CHUNK):
                out.write(chunk)
        # Kept under the name the sender's export gave it, as a REST upload is,
        # whatever the file was called on the way.
        vb = verify(staged, trusted=config.need_trusted(), revoked=config.revoked_keys)
        m = vb.manifest
        path = staged.rename(staged.with_name(bundle_name(m.sender.site, m.seq, vb.digest)))
        report = _take_in(path, config)
    report["file"] = shown_name(uploaded.name)
    return report


def _take_in(path: Path, config: Config) -> dict[str, Any]:
    from django_adapter.intake import take_in

    report = take_in(path, route=ROUTE, config=config, staged=True, receipt=True)
    data = report.to_dict()
    # Names only: the page has no business showing the server's folders.
    data["kept"] = os.path.basename(data.get("kept") or "")
    data["receipts_written"] = [os.path.basename(p) for p in data.get("receipts_written") or []]
    return data
