"""Writes to the catalogue: registering base models and adapters (after checking their folders)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.catalog.inspection import check_adapter_fits, inspect_adapter_folder, inspect_model_folder
from evalhub.catalog.models import Adapter, AdapterStatus, BaseModel
from evalhub.catalog.selectors import adapter_by_label
from evalhub.catalog.signals import adapter_registered
from evalhub.errors import Conflict, ValidationFailed


def _snapshot(obj: BaseModel | Adapter) -> dict[str, Any]:
    data = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
    data.pop("config", None)
    data.pop("peft_config", None)
    return data


def base_model_register(*, project: Project, name: str, folder: str, actor: Any = None) -> BaseModel:
    """Check a local Hugging Face model folder and register it. Nothing is stored if a check fails."""
    name = name.strip()
    if not name:
        raise ValidationFailed("A base model needs a name.", fields={"name": ["This field is required."]})
    info = inspect_model_folder(folder)
    if info.tokenizer_folder is None:
        raise ValidationFailed(
            f"{info.folder}: no tokenizer files (tokenizer.json or tokenizer_config.json)."
        )
    try:
        with transaction.atomic():
            model = BaseModel.objects.create(
                project=project,
                name=name,
                folder=str(info.folder),
                architecture=info.architecture,
                model_type=info.model_type,
                weights_hash=info.weights_hash,
                dtype=info.dtype,
                tokenizer=str(info.tokenizer_folder),
                parameters=info.parameters,
                config=info.config,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
            audit_record(actor=actor, action="base_model.register", obj=model, after=_snapshot(model))
    except IntegrityError as exc:
        raise Conflict(
            f"A base model named {name!r} already exists in {project.name}.",
            fields={"name": ["Already exists."]},
        ) from exc
    return model


def _number_or_none(value: Any, field: str, *, integer: bool = False) -> Any:
    if value is None or value == "":
        return None
    try:
        return int(value) if integer else float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"{field} must be a number.", fields={field: ["Must be a number."]}) from exc


def adapter_register(
    *,
    project: Project,
    base_model: BaseModel,
    folder: str,
    name: str | None = None,
    version: str | None = None,
    parent: Adapter | None = None,
    stage: str | None = None,
    train_examples: int | None = None,
    synthetic_share: float | None = None,
    data_source: str | None = None,
    consent_reference: str | None = None,
    notes: str = "",
    actor: Any = None,
) -> Adapter:
    """Check a PEFT adapter folder against its base model and register it.

    Values not given are read from the folder's `evalhub.json` provenance file when it has one. The
    parent may also come from there as "name@version" of an adapter already registered in the project.
    """
    if base_model.project_id != project.pk:
        raise ValidationFailed(
            "The base model belongs to another project.", fields={"base_model": ["Not in this project."]}
        )
    info = inspect_adapter_folder(folder)
    model_info = inspect_model_folder(base_model.folder)
    check_adapter_fits(adapter=info, model=model_info, model_name=base_model.name)
    prov = info.provenance
    name = (name or prov.get("name") or info.folder.name).strip()
    version = str(version or prov.get("version") or "1").strip()
    if parent is None and prov.get("parent"):
        parent = adapter_by_label(project=project, label=str(prov["parent"]))
        if parent is None:
            raise ValidationFailed(
                f"{info.folder / 'evalhub.json'}: parent {prov['parent']!r} is not registered; register it first.",
                fields={"parent": ["Unknown adapter."]},
            )
    if parent is not None and parent.base_model_id != base_model.pk:
        raise ValidationFailed(
            "The parent adapter was trained on another base model.",
            fields={"parent": ["Different base model."]},
        )
    share = _number_or_none(
        synthetic_share if synthetic_share is not None else prov.get("synthetic_share"), "synthetic_share"
    )
    if share is not None and not 0 <= share <= 1:
        raise ValidationFailed(
            "synthetic_share must be between 0 and 1.", fields={"synthetic_share": ["Between 0 and 1."]}
        )
    examples = _number_or_none(
        train_examples if train_examples is not None else prov.get("train_examples"),
        "train_examples",
        integer=True,
    )
    if examples is not None and examples < 0:
        raise ValidationFailed(
            "train_examples cannot be negative.", fields={"train_examples": ["Cannot be negative."]}
        )
    try:
        with transaction.atomic():
            adapter = Adapter.objects.create(
                project=project,
                base_model=base_model,
                name=name,
                version=version,
                folder=str(info.folder),
                weights_hash=info.weights_hash,
                peft_type=info.peft_type,
                rank=info.rank,
                alpha=info.alpha,
                target_modules=info.target_modules,
                peft_config=info.config,
                base_quantization=info.base_quantization,
                parent=parent,
                stage=stage if stage is not None else str(prov.get("stage") or ""),
                train_examples=examples,
                synthetic_share=share,
                data_source=data_source if data_source is not None else str(prov.get("data_source") or ""),
                consent_reference=consent_reference
                if consent_reference is not None
                else str(prov.get("consent_reference") or ""),
                notes=notes,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
            audit_record(actor=actor, action="adapter.register", obj=adapter, after=_snapshot(adapter))
            adapter_id = adapter.pk
            transaction.on_commit(
                lambda: adapter_registered.send_robust(sender=Adapter, adapter_id=adapter_id)
            )
    except IntegrityError as exc:
        raise Conflict(
            f"Adapter {name}@{version} already exists in {project.name}.",
            fields={"version": ["Already exists."]},
        ) from exc
    return adapter


def adapter_set_status(*, adapter: Adapter, status: str, actor: Any = None, note: str = "") -> Adapter:
    if status not in AdapterStatus.values:
        raise ValidationFailed(
            f"Unknown status {status!r}.", fields={"status": [f"One of {', '.join(AdapterStatus.values)}."]}
        )
    with transaction.atomic():
        before = {"status": adapter.status}
        adapter.status = status
        adapter.save(update_fields=["status"])
        audit_record(
            actor=actor,
            action="adapter.set_status",
            obj=adapter,
            before=before,
            after={"status": status},
            note=note,
        )
    return adapter
