"""A rater who loses access loses their leases at once, so their tasks go back to the queue.

The accounts app sits below annotation and knows nothing of leases; these receivers hear its changes
(a membership removed or turned into a staff role, a rater dropped from a pool, a token revoked)
and end the leases concerned in the same transaction, through annotation.queue.leases_release.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver

from annotation.models import Assignment, RaterPool
from annotation.queue import leases_release
from evalhub.accounts.models import ApiToken, Membership, Role

#: Sent once a study with a judge is committed (``study_id``): evalhub.judging judges its pairs. The
#: annotation app must not load the judge (torch), so it announces the study instead of calling it.
study_created = Signal()


@receiver(post_delete, sender=Membership, dispatch_uid="annotation.leases.member_removed")
def on_member_removed(sender: Any, instance: Membership, **kwargs: Any) -> None:
    leases_release(
        leases=Assignment.objects.filter(rater_id=instance.user_id, study__project_id=instance.project_id)
    )


@receiver(post_save, sender=Membership, dispatch_uid="annotation.leases.role_changed")
def on_role_changed(sender: Any, instance: Membership, created: bool, **kwargs: Any) -> None:
    if not created and instance.role != Role.RATER:
        on_member_removed(sender, instance)


@receiver(post_save, sender=ApiToken, dispatch_uid="annotation.leases.token_revoked")
def on_token_revoked(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    if instance.revoked_at is not None:
        leases_release(leases=Assignment.objects.filter(token=instance))


@receiver(m2m_changed, sender=RaterPool.members.through, dispatch_uid="annotation.leases.pool_left")
def on_pool_left(sender: Any, instance: Any, action: str, pk_set: set[int] | None, **kwargs: Any) -> None:
    """Raters dropped from a pool (`pool.members.remove(...)`, or a clear) lose that pool's leases."""
    if action not in ("post_remove", "pre_clear") or not isinstance(instance, RaterPool):
        return  # a change made from the user's side (user.rater_pools) is rare; submits re-check anyway
    users = pk_set if action == "post_remove" else set(instance.members.values_list("pk", flat=True))
    leases_release(leases=Assignment.objects.filter(study__pool=instance, rater_id__in=users or ()))
