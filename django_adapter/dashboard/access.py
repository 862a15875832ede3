"""Who may see and do what: staff users with Django permissions.

``view_dashboard`` opens every page; ``act_on_dashboard`` is needed as well for
anything that changes the ledger (retry, resolve, upload).  A superuser has both.
Someone not logged in is sent to the login page; a logged-in user without the
right (not staff, or without the permission) gets a 403 page that says why.
"""

from __future__ import annotations

import functools

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect

VIEW = "django_adapter.view_dashboard"
ACT = "django_adapter.act_on_dashboard"


def can_view(user) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW))


def can_act(user) -> bool:
    return can_view(user) and user.has_perm(ACT)


def _refuse(request, why: str):
    context = {"why": why, "request": request, "user": request.user}
    return render(request, "bundlekit_dashboard/refused.html", context, status=403)


def require(permission: str):
    """Decorate a view: log in first, then be staff with ``permission``.

    Every page is also CSRF-protected on its own (``csrf_protect`` sets the cookie
    the forms' tokens are checked against), so the POST forms are safe in a
    project that does not run ``CsrfViewMiddleware``.
    """

    def decorate(view):
        @csrf_protect
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("bundlekit-dashboard:login"))
            if not (user.is_active and user.is_staff):
                return _refuse(request, "These pages are for staff users; your account is not staff.")
            if not can_view(user):
                return _refuse(request, "Your account may not view the sync pages (permission "
                                        f"{VIEW}).")
            if permission == ACT and not can_act(user):
                return _refuse(request, "Your account may look but not act (permission "
                                        f"{ACT}).")
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
