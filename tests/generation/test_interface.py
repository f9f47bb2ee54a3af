"""GenerationConfig, per-sample seeds and the backend registry."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from evalhub.generation import (
    BackendUnavailable,
    GenerationConfig,
    derive_seed,
    expand_requests,
    get_backend,
)


def test_config_hash_is_stable_and_sensitive_to_every_field() -> None:
    config = GenerationConfig(max_new_tokens=32, stop=["\n\n"])
    assert config.config_hash() == GenerationConfig(max_new_tokens=32, stop=("\n\n",)).config_hash()
    assert len(config.config_hash()) == 64
    changes = {
        "max_new_tokens": 33,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 1,
        "stop": ("x",),
        "samples": 2,
        "use_chat_template": False,
        "truncation": "reject",
        "max_prompt_tokens": 10,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(GenerationConfig)}
    hashes = {dataclasses.replace(config, **{k: v}).config_hash() for k, v in changes.items()}
    assert config.config_hash() not in hashes
    assert len(hashes) == len(changes)


def test_config_hash_is_the_same_in_a_fresh_process() -> None:
    code = "from evalhub.generation import GenerationConfig as C; print(C(seed=3, stop=['a']).config_hash())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == GenerationConfig(seed=3, stop=("a",)).config_hash()


def test_config_round_trips_through_a_dict_and_is_frozen() -> None:
    config = GenerationConfig(temperature=0.5, top_p=0.9, stop=("END",), samples=3)
    assert GenerationConfig.from_dict(config.to_dict()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown"):
        GenerationConfig.from_dict({"max_tokens": 3})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 0},
        {"temperature": -1},
        {"top_p": 0},
        {"samples": 0},
        {"truncation": "right"},
        {"stop": [""]},
    ],
)
def test_config_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        GenerationConfig(**kwargs)


def test_seed_depends_on_config_seed_key_and_sample_only() -> None:
    seed = derive_seed(0, ("a", 1), 0)
    assert seed == derive_seed(0, ("a", 1), 0)
    assert 0 <= seed < 2**63
    assert (
        len({seed, derive_seed(1, ("a", 1), 0), derive_seed(0, ("a", 2), 0), derive_seed(0, ("a", 1), 1)})
        == 4
    )


def test_expand_requests_makes_one_request_per_adapter_case_and_sample() -> None:
    requests = expand_requests({"c1": "x", "c2": "y"}, [None, "v1"], GenerationConfig(samples=3))
    assert len(requests) == 12
    assert {r.key for r in requests} == {
        (a, c, s) for a in (None, "v1") for c in ("c1", "c2") for s in range(3)
    }


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match="unknown generation backend 'tgi'"):
        get_backend("tgi")


REPO = Path(__file__).resolve().parents[2]
# A finder that refuses Django and Celery, as on the GPU box or in the vLLM venv where neither is installed.
BLOCK_DJANGO_AND_CELERY = (
    "import sys\n"
    "class Blocked:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('django', 'celery', 'rest_framework'):\n"
    "            raise ImportError(name + ' is not installed here')\n"
    "sys.meta_path.insert(0, Blocked())\n"
)


def _python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()


def test_importing_the_package_loads_neither_torch_nor_vllm_nor_django_nor_celery() -> None:
    code = (
        "import sys; import evalhub.generation;"
        "print(sorted(m for m in ('torch', 'vllm', 'django', 'celery') if m in sys.modules))"
    )
    assert _python(code) == "[]"


def test_the_engine_imports_where_django_and_celery_are_not_installed() -> None:
    code = BLOCK_DJANGO_AND_CELERY + (
        "import evalhub.generation, evalhub.generation.hf_backend, evalhub.generation.sanity\n"
        "import evalhub.generation.vllm_backend, evalhub.generation.vllm_check\n"
        "print(evalhub.generation.get_backend('hf').name)\n"
    )
    assert _python(code) == "hf"
