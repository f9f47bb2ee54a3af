"""A tiny model family and suite factories for the run tests (built once per session, in a tmp dir)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from evalhub.runs import engine
from evalhub.suites.models import Case, SuiteVersion
from tests.factories import CaseFactory, SuiteFactory, SuiteVersionFactory, text_hash
from tests.tiny_models import make_base_model, make_lora_adapter


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny-base (Llama, 256-token context) with adapters alpha and beta, and zero (alpha, B zeroed)."""
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("runs-family")
    base = make_base_model(root / "tiny-base")
    folders = {
        "base": base,
        "alpha": make_lora_adapter(root / "alpha", base, seed=1),
        "beta": make_lora_adapter(root / "beta", base, seed=2),
    }
    zero = root / "zero"
    shutil.copytree(folders["alpha"], zero)
    weights = zero / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v.zero_() if "lora_B" in k else v for k, v in tensors.items()}, str(weights))
    folders["zero"] = zero
    return folders


@pytest.fixture
def tiny(project: Any, tiny_folders: dict[str, Path]) -> dict[str, Any]:
    """The tiny family registered in the project: {"base": BaseModel, "alpha": Adapter, ...}."""
    from evalhub.catalog.services import adapter_register, base_model_register

    base = base_model_register(project=project, name="tiny-base", folder=str(tiny_folders["base"]))
    family: dict[str, Any] = {"base": base}
    for name in ("alpha", "beta", "zero"):
        family[name] = adapter_register(
            project=project, base_model=base, folder=str(tiny_folders[name]), name=name, version="1"
        )
    return family


def words(start: int, count: int) -> str:
    """A prompt in the tiny tokenizer's vocabulary (one token per word)."""
    return " ".join(f"t{(start + i) % 290}" for i in range(count))


def make_suite_version(project: Any, inputs: list[str], *, name: str = "tiny-suite", number: int = 1,
                       splits: list[str] | None = None) -> SuiteVersion:
    version = SuiteVersionFactory(
        suite=SuiteFactory(project=project, name=name), number=number, content_hash=text_hash("\n".join(inputs)),
        case_count=len(inputs),
    )
    Case.objects.bulk_create(
        CaseFactory.build(
            version=version,
            key=f"c{i}",
            position=i,
            input=text,
            reference=f"ref {i}",
            split=(splits[i] if splits else "eval"),
            content_hash=text_hash(text),
        )
        for i, text in enumerate(inputs)
    )
    return version


@pytest.fixture
def suite_version(project: Any) -> SuiteVersion:
    return make_suite_version(project, [words(i * 7, 12 + i) for i in range(6)])


@pytest.fixture
def no_completion_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop at the completed run: scoring, which a completed run triggers, has its own tests."""
    from evalhub.runs import hooks

    monkeypatch.setattr(hooks, "RUN_COMPLETED_HOOKS", [])


@pytest.fixture(autouse=True)
def _fresh_engine() -> Any:
    """Every test starts without a cached engine (tests swap backends and families)."""
    engine.engine_release()
    yield
    engine.engine_release()
