"""The hook for what a site may write: value validation and ownership (issue 10, item 6).

The engine asks its policy about every insert, update and delete it is about to
apply (after the stale rule and reference resolution, before anything is
written); a non-empty answer makes that row ``failed`` with the answer as its
reason, and nothing of it is written.  The default policy allows everything the
apply rules allow.  A project sets another with ``Applier(..., policy=...)`` (or
``apply_rows(..., policy=...)``).
"""

from __future__ import annotations


class ApplyPolicy:
    """Allows every change (the default)."""

    def refuse(self, model, record: dict, current) -> str:
        """Why ``record`` (a change of ``model``) must not be applied, or "".

        ``current`` is the server's copy of the object before this change (a model
        instance), or None when the change creates it (or deletes a missing one).
        """
        return ""


DEFAULT = ApplyPolicy()
