"""Versions once made: locking when a run uses one, editing a case of an unlocked version, deleting one."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from evalhub.audit.services import audit_record
from evalhub.errors import Conflict, ValidationFailed
from evalhub.suites.models import CASE_FILE_FIELDS, Case, SuiteVersion
from evalhub.suites.services.imports import _version_hash
from evalhub.suites.validation import (
    CaseData,
)


def suite_version_lock(*, version: SuiteVersion, actor: Any = None, note: str = "") -> SuiteVersion:
    """Freeze a version (the runs app calls this when a run starts). Idempotent: the first lock stays."""
    with transaction.atomic():
        locked = SuiteVersion.objects.select_for_update().get(pk=version.pk)
        if locked.locked_at is None:
            locked.locked_at = timezone.now()
            locked.save(update_fields=["locked_at"])
            audit_record(
                actor=actor,
                action="suite_version.lock",
                object_type="suites.suiteversion",
                object_id=locked.pk,
                project=locked.suite.project,
                after={"locked_at": locked.locked_at},
                note=note,
            )
    version.locked_at = locked.locked_at
    return version


EDITABLE = tuple(name for name in CASE_FILE_FIELDS if name != "key")  # the key identifies the case


def case_update(*, case: Case, actor: Any = None, **changes: Any) -> Case:
    """Edit one case of an unlocked version. Raises Conflict once a run has used the version."""
    with transaction.atomic():
        version = SuiteVersion.objects.select_for_update().get(pk=case.version_id)
        if version.locked_at is not None:
            raise Conflict(
                f"{version} is locked: a run has used it. Upload a new version instead.",
                fields={"version": ["Locked."]},
            )
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValidationFailed(f"Cannot edit {', '.join(sorted(unknown))}.")
        before = {k: getattr(case, k) for k in changes}
        for k, v in changes.items():
            setattr(case, k, v)
        data = CaseData(
            row=case.position,
            key=case.key,
            input=case.input,
            reference=case.reference,
            tags=case.tags,
            slices=case.slices,
            origin=case.origin,
            generator=case.generator,
            split=case.split,
            category=case.category,
            expected=case.expected,
        )
        case.content_hash = data.content_hash()
        case.save()
        hashes = dict(Case.objects.filter(version=version).values_list("key", "content_hash"))
        version.content_hash = _version_hash(hashes)
        version.save(update_fields=["content_hash"])
        audit_record(
            actor=actor,
            action="case.update",
            obj=case,
            project=version.suite.project,
            before=before,
            after=changes,
        )
    return case


def suite_version_delete(*, version: SuiteVersion, actor: Any = None) -> None:
    with transaction.atomic():
        locked = SuiteVersion.objects.select_for_update().get(pk=version.pk)
        if locked.locked_at is not None:
            raise Conflict(f"{locked} is locked: a run has used it, so it cannot be deleted.")
        audit_record(
            actor=actor,
            action="suite_version.delete",
            object_type="suites.suiteversion",
            object_id=locked.pk,
            project=locked.suite.project,
            before={"number": locked.number, "cases": locked.case_count},
        )
        locked.delete()
