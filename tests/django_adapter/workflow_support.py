"""Shared set-up of the workflow tests: keys on disk, and a Config per role.

The ``default`` alias plays the field laptop (site-a), ``server`` plays central.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from bundlekit.keys import Identity, write_keypair
from django_adapter.conf import get_config


class Keys:
    """site-a, site-b (another laptop), central, and a stranger (another project)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.ids = {}
        for name in ("site-a", "site-b", "central", "stranger"):
            identity = Identity.generate(name)
            write_keypair(identity, folder, name=name)
            self.ids[name] = identity

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    def pub(self, name: str) -> Path:
        return self.folder / f"{name}.pub"


def site_settings(keys: Keys, root: Path, site: str = "site-a", **extra) -> dict:
    return {
        "SITE": site,
        "IDENTITY": str(keys.key(site)),
        "RECIPIENTS": [str(keys.pub("central"))],
        # Roles (issue 10): peers may send us bundles, only central acknowledges ours.
        "TRUSTED": [str(keys.pub("site-b" if site != "site-b" else "site-a"))],
        "RECEIPTS_FROM": [str(keys.pub("central"))],
        "OUTBOX": str(root / site / "outbox"),
        "DATABASE": "default",
        **extra,
    }


def server_settings(keys: Keys, root: Path, **extra) -> dict:
    return {
        "SITE": "central",
        "IDENTITY": str(keys.key("central")),
        "TRUSTED": [str(keys.pub("site-a")), str(keys.pub("site-b"))],
        "INBOX": str(root / "central" / "inbox"),
        "RECEIPTS_OUT": str(root / "central" / "receipts"),
        "DATABASE": "server",
        **extra,
    }


def config_of(bundlekit: dict, base: Path):
    return get_config(settings=SimpleNamespace(BUNDLEKIT=bundlekit, BASE_DIR=base))
