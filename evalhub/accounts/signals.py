"""Log-ins, log-outs and failed log-ins go to the audit trail; failures feed the login lock."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from evalhub.accounts.lockout import client_ip, login_failure_record, login_failures_clear, login_locked_for
from evalhub.audit.services import audit_record


@receiver(user_logged_in, dispatch_uid="evalhub.audit.login")
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    ip = client_ip(request)
    login_failures_clear(username=user.get_username(), ip=ip)
    audit_record(
        actor=user, action="auth.login", object_type="auth.user", object_id=user.pk, after={"ip": ip}
    )


@receiver(user_logged_out, dispatch_uid="evalhub.audit.logout")
def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    audit_record(
        actor=user,
        action="auth.logout",
        object_type="auth.user",
        object_id=user.pk,
        after={"ip": client_ip(request)},
    )


@receiver(user_login_failed, dispatch_uid="evalhub.audit.login_failed")
def on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    username = str(credentials.get("username") or "")[:150]
    ip = client_ip(request)
    if username and login_locked_for(username=username, ip=ip):
        audit_record(
            actor=None,
            action="auth.login_refused_locked",
            object_type="auth.user",
            after={"username": username, "ip": ip},
        )
        return
    audit_record(
        actor=None,
        action="auth.login_failed",
        object_type="auth.user",
        after={"username": username, "ip": ip},
    )
    if username and login_failure_record(username=username, ip=ip):
        audit_record(
            actor=None, action="auth.lockout", object_type="auth.user", after={"username": username, "ip": ip}
        )
