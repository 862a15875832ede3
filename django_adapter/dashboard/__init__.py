"""The data manager's pages: sync status, the review queue, rejected files and an
upload form, in a browser (issue 15; walk-through in docs/WORKFLOW.md).

Included by a project beside the REST URLconf::

    path("sync/", include("django_adapter.dashboard.urls"))

Server-rendered Django templates that work without JavaScript; the stylesheet,
the drag-and-drop script and the per-day chart (SVG drawn here) are served by the
app itself, so an offline community server needs no CDN and no ``collectstatic``.
Every page needs a staff user with ``django_adapter.view_dashboard``; retrying,
resolving and uploading also need ``django_adapter.act_on_dashboard``.
"""
