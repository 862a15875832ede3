"""Per-record progress: export_pending and import_bundle tell a callback how many
records they just dealt with, in batches, and the counts add up to the bundle's
record count (so a bar with the manifest's total ends full).  Through the
workflow calls too, and whatever the bundle's fate (applied, waiting for a gap,
duplicate)."""

import pytest

from django_adapter.exporter import CHUNK
from django_adapter.importer import PROGRESS_STEP
from django_adapter.workflow import export_to, import_paths, records_to_import
from tests.django_adapter.workflow_support import config_of, server_settings, site_settings
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])

MANY = 2 * PROGRESS_STEP + 345  # more than one batch of each kind, and a remainder


def households(first: int, n: int) -> None:
    m.Household.objects.bulk_create(m.Household(code=f"HH-{i}") for i in range(first, first + n))


def test_export_and_import_count_every_record_in_batches(site, server, usb):
    households(0, MANY)
    exported: list[int] = []
    report = export_to(usb, config=site, progress=exported.append)
    (sealed,) = report.sealed
    assert sealed["records"] == MANY
    assert sum(exported) == MANY
    assert len(exported) == -(-MANY // CHUNK) and max(exported) == CHUNK

    assert records_to_import([usb], config=server) == MANY
    imported: list[int] = []
    run = import_paths([usb], config=server, progress=imported.append)
    assert [(f.status, f.applied) for f in run.files] == [("applied", MANY)]
    assert sum(imported) == MANY
    assert imported == [PROGRESS_STEP, PROGRESS_STEP, MANY - 2 * PROGRESS_STEP]
    assert m.Household.objects.using("server").count() == MANY


def test_a_duplicate_bundle_counts_its_records_at_once(site, server, usb):
    households(0, 12)
    export_to(usb, config=site)
    import_paths([usb], config=server)
    again: list[int] = []
    run = import_paths([usb], config=server, progress=again.append)
    assert [f.status for f in run.files] == ["duplicate"]
    assert again == [12]


def test_a_bundle_waiting_for_a_gap_counts_what_it_stored(site, server, usb, tmp_path):
    households(0, 5)
    (first,) = export_to(usb, config=site).copied
    households(5, 7)
    export_to(usb, config=site)
    (usb / first).rename(tmp_path / first)  # seq 1 comes later, by another route

    counts: list[int] = []
    run = import_paths([usb], config=server, progress=counts.append)
    assert [(f.status, f.missing_seqs) for f in run.files] == [("waiting-for-gap", [1])]
    assert counts == [7]
    # Seq 1 fills the gap: its 5 records are counted, not the 7 applied with it.
    counts.clear()
    run = import_paths([tmp_path / first], config=server, progress=counts.append)
    assert [f.applied for f in run.files] == [12]
    assert counts == [5]


def test_rolled_over_bundles_and_own_bundles(site, server, usb, keys, tmp_path):
    """Several bundles from one export (MAX_BYTES roll-over): the export's counts add
    up to all of them.  Back on the laptop, its own bundles are not in the total."""
    small = config_of(site_settings(keys, tmp_path, MAX_BYTES=4 * 1024), tmp_path)
    households(0, 600)
    exported: list[int] = []
    report = export_to(usb, config=small, progress=exported.append)
    assert len(report.sealed) > 1
    assert sum(exported) == sum(b["records"] for b in report.sealed) == 600

    imported: list[int] = []
    import_paths([usb], config=server, progress=imported.append)
    assert sum(imported) == 600
    assert records_to_import([usb], config=site) == 0


def test_without_a_callback_the_reports_are_the_same(site, server, usb):
    """The default stays as it was: no callback, the same reports."""
    households(0, 3)
    export_to(usb, config=site)
    run = import_paths([usb], config=server)
    assert [f.applied for f in run.files] == [3]


# ------------------------------------------------------------------ the commands


@pytest.fixture
def terminal(monkeypatch):
    """progress() drawing into a string, as it would on a terminal."""
    import io

    from rich.console import Console

    from bundlekit.cli import output as core_cli
    from django_adapter import cli

    screen = io.StringIO()
    monkeypatch.setattr(core_cli, "interactive", lambda: True)
    monkeypatch.setattr(cli, "interactive", lambda: True)
    monkeypatch.setattr(
        core_cli, "_stderr_console", lambda: Console(file=screen, force_terminal=True, width=150)
    )
    return screen


def test_export_and_import_commands_draw_records_bars(
    terminal, settings, keys, tmp_path, usb, capsys
):
    """On a terminal the bars count records against the real totals: the pending
    changes for export, the manifests' record counts for import."""
    from django_adapter import cli

    households(0, MANY)
    settings.BUNDLEKIT = site_settings(keys, tmp_path)
    cli.export(out_dir=usb)
    assert f"{MANY}/{MANY}" in terminal.getvalue() and "records/s" in terminal.getvalue()
    assert "sealed   seq 1" in capsys.readouterr().out

    terminal.seek(0), terminal.truncate()
    settings.BUNDLEKIT = server_settings(keys, tmp_path)
    cli.import_(files=[usb])
    assert f"{MANY}/{MANY}" in terminal.getvalue() and "records/s" in terminal.getvalue()
    assert f"applied {MANY}" in capsys.readouterr().out
