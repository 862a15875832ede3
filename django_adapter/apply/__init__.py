"""The apply engine: ledger rows in, rows of the synced models out.

Modules, in the order a window of records goes through them:

* ``ledger``      records -> ledger rows (dedup per sender, shape checks), and the
                  one write of each row with its final status;
* ``plan``        what each model needs, and which rows may share a stage;
* ``stale``       the stale rule (one function);
* ``naturalkeys`` natural keys, a window at a time;
* ``engine``      :class:`Applier`: a window's stages, decisions, fallbacks;
* ``writes``      one model's inserts, updates, deletes and M2M sets;
* ``rows``        the per-record path (multi-table inheritance, self references,
                  and stages redone row by row);
* ``policy``      the hook asked about every change (validation, ownership);
* ``queue``       entry points: ``apply_rows``, ``apply_queryset``,
                  ``retry_failed``, ``copy_to_incoming``.

The outcome names and counters are ``django_adapter.outcomes``; values go into the
database's form through ``django_adapter.prep`` (shared with capture).
"""

from django_adapter.outcomes import OUTCOMES, ApplyResult, CopyResult

from .engine import Applier, fewer_collections
from .ledger import BATCH, store_chunks, store_records
from .policy import ApplyPolicy, FieldRules, OwnRowsOnly
from .queue import apply_queryset, apply_rows, copy_to_incoming, retry_failed
from .rows import apply_record

__all__ = [
    "OUTCOMES",
    "ApplyResult",
    "CopyResult",
    "Applier",
    "fewer_collections",
    "BATCH",
    "store_chunks",
    "store_records",
    "apply_rows",
    "apply_queryset",
    "retry_failed",
    "copy_to_incoming",
    "apply_record",
    "ApplyPolicy",
    "FieldRules",
    "OwnRowsOnly",
]
