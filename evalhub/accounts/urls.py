from django.contrib.auth import views as auth_views
from django.urls import path

from evalhub.accounts import views

# The login and logout names stay global (LOGIN_URL, templates and other apps use them).
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("set-password/<uidb64>/<token>/", views.SetPasswordView.as_view(), name="password_reset_confirm"),
    path("set-password/done/", views.SetPasswordDoneView.as_view(), name="password_reset_complete"),
    path("tokens/", views.tokens, name="accounts-tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="accounts-token-revoke"),
    path("projects/<slug:project_slug>/members/", views.members, name="accounts-members"),
    path(
        "projects/<slug:project_slug>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="accounts-member-remove",
    ),
]
