"""The register_model and register_adapter commands: success output, and a non-zero exit on bad folders."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from evalhub.catalog.models import Adapter, BaseModel
from tests.tiny_models import make_base_model, make_lora_adapter

pytestmark = pytest.mark.django_db


def test_register_model_and_adapter_from_the_cli(project, tmp_path):
    base = make_base_model(tmp_path / "tiny-base")
    adapter = make_lora_adapter(tmp_path / "lora", base)
    out = StringIO()
    call_command("register_model", str(base), project=project.slug, name="tiny-base", stdout=out)
    assert "Registered base model tiny-base" in out.getvalue()
    call_command("register_adapter", str(adapter), project=project.slug, base_model="tiny-base", adapter_version="2",
                 synthetic_share=0.25, stdout=out)
    assert Adapter.objects.get().synthetic_share == 0.25
    assert "Registered adapter lora@2" in out.getvalue()


def test_bad_folder_exits_non_zero_with_the_file_named(project, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match=r"empty/config.json: file is missing"):
        call_command("register_model", str(tmp_path / "empty"), project=project.slug, name="x")
    assert not BaseModel.objects.exists()


def test_unknown_project_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="Unknown project 'nope'"):
        call_command("register_model", str(tmp_path), project="nope", name="x")
