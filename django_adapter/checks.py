"""System checks (``manage.py check``): catch at deploy time what would otherwise
surface as a SyncError on a laptop in the field."""

from __future__ import annotations

from django.apps import apps
from django.core import checks

from django_adapter.managers import SyncManager, SyncQuerySet
from django_adapter.serialization import (
    is_synced,
    synced_fields,
    synced_m2m,
    travels_by_natural_key,
)


@checks.register()
def check_synced_models(app_configs=None, **kwargs):
    configs = app_configs or apps.get_app_configs()
    return check_models(model for config in configs for model in config.get_models())


def check_models(candidates) -> list:
    """Errors and warnings for the synced models among ``candidates``."""

    errors = []
    for model in candidates:
        if not is_synced(model) or model._meta.proxy:
            continue
        label = model._meta.label
        if not callable(getattr(model, "natural_key", None)):
            errors.append(
                checks.Error(
                    f"{label} is synced but has no natural_key() method.",
                    hint="Rows are found on the server by natural key; add natural_key().",
                    obj=model,
                    id="django_adapter.E001",
                )
            )
        manager = model._default_manager
        if not callable(getattr(manager, "get_by_natural_key", None)):
            errors.append(
                checks.Error(
                    f"{label}'s default manager has no get_by_natural_key().",
                    hint="Subclass django_adapter.managers.SyncManager and add get_by_natural_key().",
                    obj=model,
                    id="django_adapter.E002",
                )
            )
        for name, mgr in ((m.name, m) for m in model._meta.managers):
            if not isinstance(mgr, SyncManager) and not issubclass(
                getattr(mgr, "_queryset_class", object), SyncQuerySet
            ):
                errors.append(
                    checks.Warning(
                        f"{label}.{name}: update() and bulk_create() through this manager "
                        "are not captured.",
                        hint="Build the manager from django_adapter.managers.SyncManager / SyncQuerySet.",
                        obj=model,
                        id="django_adapter.W001",
                    )
                )
        refs = [f for f in synced_fields(model) if f.many_to_one or f.one_to_one]
        refs += synced_m2m(model)
        for f in refs:
            target = f.remote_field.model
            if travels_by_natural_key(f.target_field) and not callable(
                getattr(target, "natural_key", None)
            ):
                errors.append(
                    checks.Error(
                        f"{label}.{f.name} points at {target._meta.label}, whose autoincrement "
                        "pk cannot travel and which has no natural_key().",
                        obj=model,
                        id="django_adapter.E003",
                    )
                )
    return errors


@checks.register()
def check_site_names(app_configs=None, **kwargs):
    """The site named on captured records must be the site that signs the bundle.

    Capture takes the producer's site from ``BUNDLEKIT["SITE"]`` (the signing
    machine's settings) and falls back to edc-sync's ``settings.BUNDLEKIT_SITE``
    only when that dict is absent.  When both are set and differ, one of them is
    wrong: a deployment that meant ``BUNDLEKIT_SITE`` would see every record
    refused at the server ("claims producer"), so say so before anything is
    captured.
    """
    from django.conf import settings

    raw = getattr(settings, "BUNDLEKIT", None)
    legacy = getattr(settings, "BUNDLEKIT_SITE", None)
    if not isinstance(raw, dict) or not raw.get("SITE") or not legacy:
        return []
    if legacy == raw["SITE"]:
        return []
    return [
        checks.Error(
            f"settings.BUNDLEKIT_SITE is {legacy!r} but BUNDLEKIT['SITE'] is {raw['SITE']!r}: "
            "captured changes name BUNDLEKIT['SITE'] as their site.",
            hint="Remove BUNDLEKIT_SITE (BUNDLEKIT['SITE'] replaces it) or give both the same name.",
            id="django_adapter.E103",
        )
    ]
