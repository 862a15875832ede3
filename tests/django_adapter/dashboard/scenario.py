"""The server the dashboard tests look at, made the way the field makes it: two
laptops' changes captured on ``default``, sealed into real bundles with each
laptop's key, and imported into the server's ``server`` database.

site-a sends three households; site-b two households and two subjects whose
household never left the laptop (its transaction was lost), so the server
refuses those two subjects: 2 failed transactions waiting in the review queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.test import override_settings

from django_adapter.exporter import export_pending
from django_adapter.models import OutgoingTransaction
from django_adapter.workflow import import_paths
from tests.django_adapter.workflow_support import Keys, config_of, server_settings
from tests.test_app import models as m


@dataclass
class Field:
    keys: Keys
    root: Path
    settings: dict
    bundles: dict  # site -> [bundle paths]

    @property
    def config(self):
        return config_of(self.settings, self.root)


def seal(keys: Keys, root: Path, site: str) -> Path:
    """Seal what is pending on ``default`` as ``site`` (its own key, its own chain)."""
    made = export_pending(root / site / "outbox", identity=keys.ids[site],
                          recipients=[keys.ids["central"].public], using="default")
    (bundle,) = made
    return root / site / "outbox" / bundle.file_name


def on_laptop(site: str):
    """Changes entered on ``site``'s laptop name it as their producer's site (as
    its ``BUNDLEKIT["SITE"]`` does), whatever dict the test's server uses."""
    return override_settings(BUNDLEKIT={"SITE": site})


def site_a_changes(n: int = 3) -> None:
    with on_laptop("site-a"):
        for i in range(n):
            m.Household.objects.create(code=f"A-{i}", village="Molepolole")


def site_a_changes_more() -> None:
    """site-a's next shift: one new household, one corrected (two changes)."""
    with on_laptop("site-a"):
        m.Household.objects.create(code="A-9", village="Molepolole")
        m.Household.objects.filter(code="A-0").update(village="Gabane")


def site_b_changes() -> None:
    with on_laptop("site-b"):  # entered on site-b's laptop
        _site_b_changes()


def _site_b_changes() -> None:
    m.Household.objects.create(code="B-1", village="Thamaga")
    m.Household.objects.create(code="B-2", village="Thamaga")
    lost = m.Household.objects.create(code="B-LOST", village="Thamaga")
    # The household's own change never left the laptop: the server cannot place the subjects.
    OutgoingTransaction.objects.filter(tx_name="test_app.household", tx_pk=str(lost.pk)).delete()
    m.Subject.objects.create(code="S-1", household=lost)
    m.Subject.objects.create(code="S-2", household=lost)


def build(root: Path, *, import_now: bool = True, **extra) -> Field:
    """Keys, two sealed bundles and (``import_now``) their import on the server."""
    keys = Keys(root / "keys")
    settings = server_settings(keys, root, **extra)
    site_a_changes()
    a = seal(keys, root, "site-a")
    site_b_changes()
    b = seal(keys, root, "site-b")
    field = Field(keys, root, settings, {"site-a": [a], "site-b": [b]})
    if import_now:
        run = import_paths([a, b], config=field.config)
        statuses = [(f.site, f.status, f.applied, f.failed) for f in run.files]
        assert statuses == [("site-a", "applied", 3, 0), ("site-b", "applied", 2, 2)], statuses
    return field
