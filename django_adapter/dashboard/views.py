"""The pages.  Each view gathers what its page shows and renders one template;
the work is in the modules beside this one (senders, attention, rejected, upload).

Forms are plain POST forms with Django's CSRF token; after an action the browser is
redirected back (POST/redirect/GET) with one line saying what happened, kept in
the session until shown.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

from django.contrib.auth import views as auth_views
from django.db import DatabaseError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bundlekit.errors import BundleError
from django_adapter.conf import ConfigError, get_config
from django_adapter.dashboard import attention
from django_adapter.dashboard.access import ACT, VIEW, can_act, require
from django_adapter.dashboard.rejected import rejected_files
from django_adapter.dashboard.senders import senders
from django_adapter.dashboard.settings import dashboard_settings
from django_adapter.dashboard.upload import shown_name, take_in_upload
from django_adapter.models import BundleStatus, ImportedBundle, SenderState

FLASH = "bundlekit_dashboard_flash"
ASSETS = Path(__file__).with_name("assets")
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
ACTION_WORDS = {"I": "insert", "U": "update", "D": "delete"}
#: Queue items shown on one page (the total is always given).
QUEUE_PAGE = 200
#: Bundles listed on a site's page: the newest ones.
BUNDLES_PAGE = 500


def _flash(request, message: str, ok: bool = True) -> None:
    request.session[FLASH] = {"message": message, "ok": ok}


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    context = {
        # Given here, not left to context processors a project may not have.
        "request": request,
        "user": request.user,
        "flash": request.session.pop(FLASH, None),
        "can_act": can_act(request.user),
        **context,
    }
    return render(request, f"bundlekit_dashboard/{template}", context, status=status)


def _configured(view):
    """Hand the view the workflow Config; a broken BUNDLEKIT dict is a page saying so."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            config = get_config()
            options = dashboard_settings()
        except BundleError as exc:
            return _page(request, "problem.html", {"problem": str(exc)}, status=503)
        return view(request, config, options, *args, **kwargs)

    return wrapped


# ------------------------------------------------------------------ sign in/out


class LoginView(auth_views.LoginView):
    template_name = "bundlekit_dashboard/login.html"
    redirect_authenticated_user = False

    def get_default_redirect_url(self):
        return reverse("bundlekit-dashboard:overview")


class LogoutView(auth_views.LogoutView):
    http_method_names = ["post", "options"]

    def get_default_redirect_url(self):
        return reverse("bundlekit-dashboard:login")


# ------------------------------------------------------------------------ pages


@require_GET
@require(VIEW)
@_configured
def overview(request, config, options):
    rows, problem = senders(config, options)
    return _page(request, "overview.html", {
        "senders": rows, "problem": problem, "options": options, "title": "Sync overview",
    })


@require_GET
@require(VIEW)
@_configured
def site(request, config, options, fingerprint: str):
    rows, problem = senders(config, options, fingerprint=fingerprint)
    if not rows:
        raise Http404("no bundle from this sender has been received")
    (sender,) = rows
    received = ImportedBundle.objects.using(config.database).filter(fingerprint=fingerprint)
    bundle_count = received.count()
    # The newest BUNDLES_PAGE, shown in seq order (a laptop sends one a trip).
    bundles = sorted(received.order_by("-seq", "-id")[:BUNDLES_PAGE], key=lambda b: (b.seq, b.id))
    # The queue is by site name; a site whose key was rotated has two senders.
    items = [i for i in attention.queue(config.database, site=sender.site, limit=QUEUE_PAGE)
             if i.sender == fingerprint]
    return _page(request, "site.html", {
        "sender": sender, "bundles": bundles, "bundle_count": bundle_count, "items": items,
        "item_count": sum(sender.attention.values()),
        "problem": problem, "options": options, "title": f"Site {sender.site}",
    })


@require_GET
@require(VIEW)
@_configured
def bundle_report(request, config, options, fingerprint: str, bundle_id: str):
    bundle = ImportedBundle.objects.using(config.database).filter(
        fingerprint=fingerprint, bundle_id=bundle_id
    ).first()
    if bundle is None:
        raise Http404("no such bundle")
    messages = (bundle.report or {}).get("messages") or []
    return _page(request, "bundle.html", {
        "bundle": bundle, "notes": messages, "title": f"{bundle.site} seq {bundle.seq}",
    })


def _queue_filters(request) -> dict:
    return {
        "site": request.GET.get("site", "").strip(),
        "model": request.GET.get("model", "").strip(),
        "outcome": request.GET.get("outcome", "").strip(),
    }


@require_GET
@require(VIEW)
@_configured
def review(request, config, options):
    filters = _queue_filters(request)
    if filters["outcome"] and filters["outcome"] not in attention.OUTCOMES:
        filters["outcome"] = ""
    using = config.database
    items = attention.queue(using, **filters, limit=QUEUE_PAGE)
    counts = sum(attention.tally(using, site=filters["site"], model=filters["model"]).values(),
                 Counter())
    matching = counts[filters["outcome"]] if filters["outcome"] else sum(counts.values())
    total = sum(sum(attention.tally(using).values(), Counter()).values())
    shown = [(i, attention.actions_for(i), _compare(i), ACTION_WORDS.get(i.action, i.action),
              attention.target(i)) for i in items]
    return _page(request, "review.html", {
        "items": shown,
        "item_count": matching,
        "total": total,
        "filters": filters,
        "sites": sorted(SenderState.objects.using(using).values_list("site", flat=True).distinct()),
        "models": attention.models_in_queue(using),
        "outcomes": attention.OUTCOMES,
        "here": request.get_full_path(),
        "title": "Review queue",
    })


def _compare(item) -> list[tuple[str, object, object, bool]]:
    """(field, site's value, server's value, differs) for the side-by-side table."""
    values = item.values or {}
    server = item.server_values
    names = list(values) + [n for n in (server or {}) if n not in values]
    rows = []
    for name in names:
        mine = values.get(name, "")
        theirs = "" if server is None else server.get(name, "")
        rows.append((name, mine, theirs, server is not None and str(mine) != str(theirs)))
    return rows


@require_POST
@require(ACT)
@_configured
def review_act(request, config, options):
    back = request.POST.get("next") or reverse("bundlekit-dashboard:review")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("bundlekit-dashboard:review")
    who = request.user.get_username()
    try:
        done = attention.act(
            request.POST.get("action", ""),
            request.POST.get("tx_id", ""),
            note=request.POST.get("note", ""),
            who=who,
            config=config,
            sender=request.POST.get("sender", ""),
        )
    except BundleError as exc:
        _flash(request, f"Nothing was changed: {exc}", ok=False)
    else:
        _flash(request, done.message, ok=done.ok)
    return redirect(back)


@require_GET
@require(VIEW)
@_configured
def rejected(request, config, options):
    forks = ImportedBundle.objects.using(config.database).filter(status=BundleStatus.FORK)
    routes = {b.file_name: b.get_route_display() for b in forks.exclude(route="")}
    return _page(request, "rejected.html", {
        "files": rejected_files(config.inbox, routes), "title": "Rejected files",
    })


@require_http_methods(["GET", "POST"])
@require(VIEW)
@_configured
def upload(request, config, options):
    reports = []
    if request.method == "POST":
        if not can_act(request.user):
            return _page(request, "refused.html", {"why": f"Uploading needs the permission {ACT}."},
                         status=403)
        files = request.FILES.getlist("bundles")
        if not files:
            return _page(request, "upload.html", {
                "error": "Choose at least one .bundle file.", "title": "Upload bundles",
            }, status=400)
        for f in files:
            name = shown_name(f.name)
            try:
                reports.append(take_in_upload(f, config))
            except ConfigError as exc:
                reports.append({"file": name, "status": "not imported", "code": exc.code, "ok": False,
                                "reason": f"the server's settings need attention: {exc}"})
            except BundleError as exc:
                reports.append({"file": name, "status": "rejected", "code": exc.code,
                                "reason": exc.reason, "ok": False})
            except (DatabaseError, OSError) as exc:
                reports.append({"file": name, "status": "not imported", "code": "try-later",
                                "ok": False, "reason": "the server could not import it now "
                                f"({type(exc).__name__}); nothing was applied, try again later"})
    return _page(request, "upload.html", {"reports": reports, "title": "Upload bundles"})


@require_GET
def asset(request, name: str):
    """The stylesheet and the drag-and-drop script (public: the login page uses them)."""
    path = ASSETS / name
    if path.suffix not in _TYPES or path.name != name or not path.is_file():
        raise Http404("no such file")
    response = HttpResponse(path.read_bytes(), content_type=_TYPES[path.suffix])
    response["Cache-Control"] = "max-age=3600"
    return response
