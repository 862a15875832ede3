"""Read-only admin pages: the ledgers are evidence, never edited by hand."""

from django.contrib import admin

from django_adapter.models import (
    ConflictingTransaction,
    Decision,
    ExportedBundle,
    ImportedBundle,
    IncomingTransaction,
    OutgoingTransaction,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutgoingTransaction)
class OutgoingTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "timestamp", "tx_name", "action", "tx_pk", "producer", "exported",
                    "is_consumed_server", "server_outcome", "server_reason")
    list_filter = ("producer", "tx_name", "action", "exported", "is_consumed_server", "server_outcome")
    search_fields = ("tx_id", "tx_pk", "server_reason")
    exclude = ("tx",)


@admin.register(IncomingTransaction)
class IncomingTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "timestamp", "tx_name", "action", "tx_pk", "producer", "status", "reason")
    list_filter = ("producer", "tx_name", "status", "action")
    search_fields = ("tx_id", "tx_pk", "reason")
    exclude = ("tx",)


@admin.register(ImportedBundle)
class ImportedBundleAdmin(ReadOnlyAdmin):
    list_display = ("site", "seq", "status", "record_count", "applied_count", "failed_count", "received", "route", "file_name")
    list_filter = ("site", "status", "route")
    search_fields = ("bundle_id", "file_name")


@admin.register(ExportedBundle)
class ExportedBundleAdmin(ReadOnlyAdmin):
    list_display = ("seq", "file_name", "record_count", "acknowledged", "sealed")
    list_filter = ("acknowledged",)


@admin.register(ConflictingTransaction)
class ConflictingTransactionAdmin(ReadOnlyAdmin):
    list_display = ("tx_id", "tx_name", "position", "resolution", "received")
    list_filter = ("tx_name", "resolution")
    exclude = ("tx",)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    """Who settled which transaction, when and why (bundle resolve / retry)."""

    list_display = ("decided", "who", "choice", "tx_id", "site", "tx_name", "outcome_before",
                    "outcome_after", "note")
    list_filter = ("choice", "site", "who")
    search_fields = ("tx_id", "note", "who")
