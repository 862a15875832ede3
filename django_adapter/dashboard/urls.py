"""URLconf of the data manager's pages: ``path("sync/", include("django_adapter.dashboard.urls"))``.

Walk-through: docs/WORKFLOW.md, "The data manager's pages".
"""

from django.urls import path

from django_adapter.dashboard import views

app_name = "bundlekit-dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sites/<str:fingerprint>/", views.site, name="site"),
    path("sites/<str:fingerprint>/bundles/<str:bundle_id>/", views.bundle_report, name="bundle"),
    path("review/", views.review, name="review"),
    path("review/act/", views.review_act, name="review-act"),
    path("rejected/", views.rejected, name="rejected"),
    path("upload/", views.upload, name="upload"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("assets/<str:name>", views.asset, name="asset"),
]
