"""Approval from a GO verdict (web button and API, leads only, NO-GO refused, audited), the recipe API's
field-level refusals, the pages (recipe form, timeline, delivery log) and the watched folder."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from evalhub.audit.models import AuditEvent
from evalhub.catalog.models import Adapter, AdapterStatus
from evalhub.continuous.models import Delivery, Event
from evalhub.continuous.notifications import notify
from evalhub.continuous.watch import watch_folder_scan
from evalhub.reports.models import Verdict
from evalhub.reports.services import default_policy_for
from tests.factories import AdapterFactory, BaseModelFactory, RunFactory, SuiteFactory, SuiteVersionFactory

pytestmark = pytest.mark.django_db


def _verdict(project, decision):
    base = BaseModelFactory(project=project)
    candidate = AdapterFactory(base_model=base, name=f"cand-{decision}")
    baseline = AdapterFactory(base_model=base)
    run = RunFactory(suite_version=SuiteVersionFactory(suite=SuiteFactory(project=project)), base_model=base)
    return Verdict.objects.create(
        project=project, public_id=f"v-{decision}", run=run, policy=default_policy_for(project=project),
        candidate=candidate, baseline=baseline, decision=decision, content_hash="0" * 64,
    )


def test_a_lead_approves_a_go_verdicts_candidate_from_the_verdict_page(project, lead):
    verdict = _verdict(project, "GO")
    client = Client()
    client.force_login(lead)
    page = client.get(f"/p/{project.slug}/verdicts/{verdict.public_id}/")
    assert b"Approve cand-GO@1" in page.content
    answer = client.post(f"/p/{project.slug}/verdicts/{verdict.public_id}/approve/")
    assert answer.status_code == 302
    verdict.candidate.refresh_from_db()
    assert verdict.candidate.status == AdapterStatus.APPROVED
    event = AuditEvent.objects.get(action="adapter.approve")
    assert event.actor == lead and event.after["verdict"] == verdict.public_id


def test_no_go_is_refused_and_engineers_cannot_approve(project, lead, engineer):
    no_go = _verdict(project, "NO-GO")
    api = APIClient()
    api.force_authenticate(lead)
    answer = api.post(f"/api/v1/verdicts/{no_go.public_id}/approve/")
    assert answer.status_code == 409
    assert "verdict" in answer.json()["error"]["fields"]
    go = _verdict(project, "GO")
    api.force_authenticate(engineer)
    assert api.post(f"/api/v1/verdicts/{go.public_id}/approve/").status_code == 403
    page = Client()
    page.force_login(engineer)
    assert b"Approve" not in page.get(f"/p/{project.slug}/verdicts/{go.public_id}/").content
    assert not Adapter.objects.filter(status=AdapterStatus.APPROVED).exists()
    api.force_authenticate(lead)
    assert api.post(f"/api/v1/verdicts/{go.public_id}/approve/").json()["status"] == "approved"


def test_the_recipe_api_refuses_a_missing_suite_field_by_field(project, engineer, suite_version):
    api = APIClient()
    api.force_authenticate(engineer)
    answer = api.put(f"/api/v1/projects/{project.slug}/recipe/",
                     {"suites": ["nope"], "baseline_rule": "parent", "open_study": True}, format="json")
    assert answer.status_code == 400
    assert "suites" in answer.json()["error"]["fields"]
    answer = api.put(f"/api/v1/projects/{project.slug}/recipe/",
                     {"suites": ["tiny-suite"], "baseline_rule": "named", "baseline": "ghost@1", "open_study": True},
                     format="json")
    assert answer.status_code == 400 and "baseline" in answer.json()["error"]["fields"]
    answer = api.put(f"/api/v1/projects/{project.slug}/recipe/",
                     {"suites": ["tiny-suite"], "baseline_rule": "parent", "open_study": True}, format="json")
    assert answer.status_code == 200 and answer.json()["suites"] == ["tiny-suite@latest"]
    assert api.get(f"/api/v1/projects/{project.slug}/recipe/").json()["open_study"] is True


def test_the_recipe_form_shows_field_errors_and_saves(project, engineer, suite_version):
    client = Client()
    client.force_login(engineer)
    url = f"/p/{project.slug}/continuous/"
    assert client.get(url).status_code == 200
    bad = client.post(url, {"suites": "ghost-suite", "baseline_rule": "parent", "backend": "hf",
                            "samples_per_case": 1, "open_study": "on", "enabled": "on"})
    assert bad.status_code == 400
    assert b"No suite named" in bad.content
    good = client.post(url, {"suites": "tiny-suite", "baseline_rule": "parent", "backend": "hf",
                             "samples_per_case": 1, "open_study": "on", "enabled": "on"})
    assert good.status_code == 302
    refused = client.post(f"/p/{project.slug}/continuous/notifications/", {"webhook_url": "ftp://x.example/"})
    assert refused.status_code == 400 and b"http(s)" in refused.content


def test_the_delivery_log_lists_failed_deliveries(project, engineer, settings, django_capture_on_commit_callbacks):
    from evalhub.continuous.notifications import notification_settings_save

    settings.EVALHUB_WEBHOOK_ALLOW_PRIVATE = True
    settings.EVALHUB_WEBHOOK_ATTEMPTS = 2
    notification_settings_save(project=project, webhook_url="http://127.0.0.1:9/nothing-listens")
    with django_capture_on_commit_callbacks(execute=True):
        notify(project=project, event=Event.RUN_FAILED, subject="Run 3 failed", data={})
    assert Delivery.objects.get().status == "failed"
    client = Client()
    client.force_login(engineer)
    page = client.get(f"/p/{project.slug}/continuous/deliveries/?status=failed")
    assert b"Run 3 failed" in page.content and b"delivery-failed" in page.content
    api = APIClient()
    api.force_authenticate(engineer)
    assert api.get(f"/api/v1/projects/{project.slug}/deliveries/").json()[0]["attempts"] == 2


def test_the_timeline_shows_registration_and_approval(project, lead, tiny):
    verdict = _verdict(project, "GO")
    from evalhub.continuous.recipes import adapter_approve

    adapter_approve(verdict=verdict, actor=lead)
    client = Client()
    client.force_login(lead)
    page = client.get(f"/p/{project.slug}/adapters/{verdict.candidate_id}/timeline/")
    assert page.status_code == 200 and b"Approved" in page.content
    page = client.get(f"/p/{project.slug}/adapters/{tiny['alpha'].pk}/timeline/")
    assert b"Registered" in page.content


def test_the_watched_folder_registers_settled_adapters_once(project, tiny, tiny_folders, tmp_path, settings):
    settings.EVALHUB_WATCH_SETTLE_SECONDS = 30
    drop = tmp_path / project.slug / "tiny-base" / "delta"
    shutil.copytree(tiny_folders["beta"], drop)
    assert watch_folder_scan(root=str(tmp_path)) == []  # still being copied (just written)
    later = time.time() + 60
    (adapter,) = watch_folder_scan(root=str(tmp_path), now=later)
    assert adapter.name == "delta" and adapter.folder == str(drop.resolve())
    assert watch_folder_scan(root=str(tmp_path), now=later) == []
    broken = tmp_path / project.slug / "tiny-base" / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{not json")
    os.utime(broken / "adapter_config.json", (0, 0))
    os.utime(broken, (0, 0))
    assert watch_folder_scan(root=str(tmp_path), now=later) == []
    assert not Adapter.objects.filter(name="broken").exists()
