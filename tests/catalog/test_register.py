"""Registering base models and adapters: folders are checked, bad ones name the file and store nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalhub.audit.models import AuditEvent
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.catalog.selectors import adapter_lineage
from evalhub.catalog.services import adapter_register, base_model_register
from evalhub.errors import Conflict, ValidationFailed
from tests.tiny_models import make_base_model, make_lora_adapter

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    base = make_base_model(root / "tiny-base")
    wide = make_base_model(root / "wide-base", hidden=192)
    return {
        "base": base,
        "wide": wide,
        "adapter": make_lora_adapter(root / "tiny-lora", base),
        "wide_adapter": make_lora_adapter(root / "wide-lora", wide, base_name="tiny-base"),
        "foreign": make_lora_adapter(root / "foreign-lora", base, base_name="meta-llama/Llama-3-8B"),
    }


def test_base_model_registers_with_hash_shapes_and_tokenizer(project, tiny):
    model = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    assert model.architecture == "LlamaForCausalLM"
    assert len(model.weights_hash) == 64
    assert model.parameters and model.parameters > 0
    assert Path(model.tokenizer) == tiny["base"].resolve()
    assert AuditEvent.objects.filter(action="base_model.register", object_id=str(model.pk)).exists()


def test_adapter_registers_with_peft_config(project, tiny):
    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    adapter = adapter_register(
        project=project,
        base_model=base,
        folder=str(tiny["adapter"]),
        name="a",
        version="1",
        stage="factual",
        train_examples=5000,
        synthetic_share=0.3,
        data_source="crm",
        consent_reference="C-1",
    )
    assert (adapter.peft_type, adapter.rank, adapter.alpha) == ("LORA", 4, 8.0)
    assert sorted(adapter.target_modules) == ["q_proj", "v_proj"]
    child = adapter_register(
        project=project,
        base_model=base,
        folder=str(tiny["adapter"]),
        name="a",
        version="2",
        parent=adapter,
        stage="tone",
    )
    assert [a.label for a in adapter_lineage(adapter=child)] == ["a@1", "a@2"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "config.json").unlink(), "config.json: file is missing"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json: not valid JSON"),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]),
            "model.safetensors: corrupt",
        ),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00\x01"), "model.safetensors: corrupt"),
    ],
)
def test_bad_base_model_folder_names_the_file_and_stores_nothing(project, tiny, tmp_path, mutate, message):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(tiny["base"], folder)
    mutate(folder)
    with pytest.raises(ValidationFailed, match=message):
        base_model_register(project=project, name="broken", folder=str(folder))
    assert not BaseModel.objects.exists()


def test_missing_folder_is_a_clear_error(project, tmp_path):
    with pytest.raises(ValidationFailed, match="model folder does not exist"):
        base_model_register(project=project, name="x", folder=str(tmp_path / "nope"))


def test_adapter_for_another_base_model_is_refused(project, tiny):
    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    with pytest.raises(ValidationFailed, match="base_model_name_or_path is 'meta-llama/Llama-3-8B'"):
        adapter_register(project=project, base_model=base, folder=str(tiny["foreign"]))
    assert not Adapter.objects.exists()


def test_adapter_with_mismatched_shapes_is_refused(project, tiny):
    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    with pytest.raises(
        ValidationFailed,
        match=r"adapter_model.safetensors: module model.layers.0.self_attn.\w+_proj: LoRA maps 192->\d+ but the base layer is 128->",
    ):
        adapter_register(project=project, base_model=base, folder=str(tiny["wide_adapter"]))
    assert not Adapter.objects.exists()


def test_the_catalog_and_the_engine_fingerprint_an_adapter_alike(project, tiny):
    from evalhub.generation.adapters import read_adapter

    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    adapter = adapter_register(project=project, base_model=base, folder=str(tiny["adapter"]))
    # The run page shows both next to each other: the registered hash and the one the sanity check read.
    assert adapter.weights_hash == read_adapter("a", tiny["adapter"]).weights_sha256


def test_an_adapter_with_a_lone_lora_half_is_refused_as_the_engine_refuses_it(project, tiny, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    folder = tmp_path / "half"
    shutil.copytree(tiny["adapter"], folder)
    weights = folder / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    dropped = next(k for k in tensors if "q_proj.lora_B" in k)
    save_file({k: v for k, v in tensors.items() if k != dropped}, str(weights))
    with pytest.raises(ValidationFailed, match=r"adapter_model.safetensors: module .*q_proj has only lora_A weights"):
        adapter_register(project=project, base_model=base, folder=str(folder))
    assert not Adapter.objects.exists()


def test_corrupt_adapter_weights_are_refused(project, tiny, tmp_path):
    import shutil

    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    folder = tmp_path / "cut"
    shutil.copytree(tiny["adapter"], folder)
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValidationFailed, match="adapter_model.safetensors: corrupt or truncated"):
        adapter_register(project=project, base_model=base, folder=str(folder))
    (folder / "adapter_config.json").unlink()
    with pytest.raises(ValidationFailed, match="adapter_config.json: file is missing"):
        adapter_register(project=project, base_model=base, folder=str(folder))
    assert not Adapter.objects.exists()


def test_duplicate_version_is_a_conflict(project, tiny):
    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    adapter_register(project=project, base_model=base, folder=str(tiny["adapter"]), name="a", version="1")
    with pytest.raises(Conflict):
        adapter_register(project=project, base_model=base, folder=str(tiny["adapter"]), name="a", version="1")
    assert Adapter.objects.count() == 1


def test_synthetic_share_out_of_range_is_refused(project, tiny):
    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    with pytest.raises(ValidationFailed, match="synthetic_share"):
        adapter_register(project=project, base_model=base, folder=str(tiny["adapter"]), synthetic_share=1.5)


def test_an_adapter_label_is_name_at_version_and_a_bare_name_means_version_1(project, tiny):
    from evalhub.catalog.selectors import adapter_by_label, parse_adapter_label

    assert parse_adapter_label("tone@2") == ("tone", "2")
    assert parse_adapter_label(" tone ") == ("tone", "1")
    base = base_model_register(project=project, name="tiny-base", folder=str(tiny["base"]))
    adapter = adapter_register(project=project, base_model=base, folder=str(tiny["adapter"]), name="a", version="1")
    assert adapter_by_label(project=project, label="a") == adapter_by_label(project=project, label="a@1") == adapter
    assert adapter_by_label(project=project, label="a@2") is None
