"""Signals django_adapter sends (receivers run after the import's commit)."""

from django.dispatch import Signal

#: Sent once per imported bundle file, after its DB transaction committed.
#: kwargs: ``report`` (BundleReport), ``using`` (alias).
bundle_imported = Signal()

#: Sent after export_pending committed. kwargs: ``bundles`` (list of ExportedBundle), ``using``.
bundles_exported = Signal()
