"""Users of the dashboard tests: a data manager (view + act), a monitor (view
only), and a staff and a non-staff user without the permissions."""

import pytest
from django.contrib.auth.models import Permission, User

from tests.django_adapter.dashboard import scenario


def make_user(name: str, *, staff: bool = True, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(name, password=f"{name}-pw", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="django_adapter",
                                                         codename=codename))
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions


@pytest.fixture
def manager(db):
    return make_user("manager", perms=("view_dashboard", "act_on_dashboard"))


@pytest.fixture
def monitor(db):
    return make_user("monitor", perms=("view_dashboard",))


@pytest.fixture
def field(tmp_path, settings):
    """Two sites' bundles imported into ``server``; BUNDLEKIT set to the server's."""
    made = scenario.build(tmp_path)
    settings.BUNDLEKIT = made.settings
    return made
