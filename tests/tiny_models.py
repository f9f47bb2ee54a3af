"""Tiny random Llama (Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, OLMo) models and LoRA adapters written to a folder: the one builder.

`build_base_model` and `build_lora_adapter` are the only implementation. Two presets keep the names
their callers know: `make_base_model`/`make_lora_adapter` here (the plain family of the catalog and
run tests: default init, one layer, a word tokenizer without BOS, q/v adapters with peft's random
init) and the same names in tests/generation/factories.py (the generation tests' family: GQA, larger
weights, a BOS-prefixing tokenizer, adapters on every linear layer). Each preset writes the same
weights, configs and tokenizer it wrote before the two builders were merged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = "<s> {% for m in messages %}t1 {{ m['content'] }} t2 {% endfor %}{% if add_generation_prompt %}t3 {% endif %}"
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_base_model(
    folder: Path,
    *,
    hidden: int = 128,
    heads: int = 2,
    kv_heads: int = 1,
    layers: int = 2,
    vocab: int = 320,
    max_positions: int = 128,
    seed: int = 0,
    chat_template: bool = False,
    rope_scaling: dict[str, Any] | None = None,
    tie: bool = False,
    architecture: str = "llama",
    init_std: float | None = 0.08,
    special_ids: bool = True,
    bos_prefix: bool = True,
    config_extra: dict[str, Any] | None = None,
    init_1d_std: float | None = None,
) -> Path:
    """A random causal LM (head_dim 64) and a word-level tokenizer over "t0".."tN" in `folder`.

    `init_std` redraws every weight matrix from N(0, init_std) so random models make confident,
    varied choices (None keeps transformers' init); `special_ids` writes the pad/BOS/EOS ids (the
    last three of the vocabulary) into the config; `bos_prefix` makes the tokenizer put BOS in front
    of every text, as Llama's does. Without `special_ids` the tokenizer's first special is "<unk>".
    `architecture` is a model_type (gemma3_text: Gemma 3's text-only model); `config_extra` adds
    config fields (sliding window, soft-capping, ...); `init_1d_std` adds N(0, init_1d_std) to every
    1-D weight (norms, biases), so a norm or bias the engine forgot changes the output.
    """
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    config_name, model_name = {
        "llama": ("LlamaConfig", "LlamaForCausalLM"),
        "mistral": ("MistralConfig", "MistralForCausalLM"),
        "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
        "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
        "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
        "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
        "olmo": ("OlmoConfig", "OlmoForCausalLM"),
    }[architecture]
    config_class, model_class = getattr(transformers, config_name), getattr(transformers, model_name)
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = dict(config_extra or {})
    if rope_scaling is not None:
        kwargs["rope_scaling"] = rope_scaling
    if special_ids:
        kwargs.update(bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 3)
    config = config_class(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=64,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie,
        **kwargs,
    )
    model = model_class(config)
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, init_std)
    if init_1d_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 1:
                    p.add_(torch.randn_like(p) * init_1d_std)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    first = "<pad>" if special_ids else "<unk>"
    vocab_map = {f"t{i}": i for i in range(vocab - 3)} | {
        first: vocab - 3,
        "<s>": vocab - 2,
        "</s>": vocab - 1,
    }
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token=first))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos_prefix:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", vocab - 2)]
        )
    _save_tokenizer(tok, folder, first=first, pad=special_ids, chat_template=chat_template)
    return folder


def _save_tokenizer(tok: Any, folder: Path, *, first: str, pad: bool, chat_template: bool) -> None:
    from transformers import PreTrainedTokenizerFast

    extra = {"pad_token": first} if pad else {}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token=first, **extra
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)


def build_lora_adapter(
    folder: Path,
    base: Path,
    *,
    rank: int = 4,
    alpha: int = 8,
    targets: tuple[str, ...] = ALL_LINEAR,
    seed: int = 1,
    scale: float | None = 0.3,
    rslora: bool = False,
    dora: bool = False,
    zero_b: bool = False,
    alpha_pattern: dict[str, int] | None = None,
    task_type: str | None = "CAUSAL_LM",
    base_name: str | None = None,
) -> Path:
    """A random LoRA adapter for the model in `base`, saved to `folder`.

    `targets` may name embed_tokens and lm_head; `dora` makes it a DoRA adapter (use_dora).
    `scale` draws A and B from N(0, scale) (B zero with `zero_b`); None keeps peft's own random
    init (init_lora_weights=False). `base_name` is written as base_model_name_or_path (default:
    the base folder's full path).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    if scale is None:
        model = AutoModelForCausalLM.from_pretrained(base)
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            target_modules=list(targets),
            lora_dropout=0.0,
            use_rslora=rslora,
            use_dora=dora,
            alpha_pattern=alpha_pattern or {},
            task_type=task_type,
        )
    peft_model = get_peft_model(model, config)
    if scale is not None:
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name or "lora_embedding_B" in name:
                    p.zero_() if zero_b else p.normal_(0, scale)
                elif "lora_A" in name or "lora_embedding_A" in name:
                    p.normal_(0, scale)
    peft_model.save_pretrained(folder, safe_serialization=True)
    cfg_file = folder / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = base_name if base_name is not None else str(base)
    cfg_file.write_text(json.dumps(cfg, indent=2))
    return folder


def make_base_model(
    folder: Path, *, hidden: int = 128, layers: int = 1, vocab: int = 300, seed: int = 0
) -> Path:
    """The plain family's base: transformers' init, no GQA, 256 positions, no BOS in the tokenizer."""
    return build_base_model(
        folder,
        hidden=hidden,
        heads=hidden // 64,
        kv_heads=hidden // 64,
        layers=layers,
        vocab=vocab,
        max_positions=256,
        seed=seed,
        init_std=None,
        special_ids=False,
        bos_prefix=False,
    )


def make_lora_adapter(
    folder: Path, base: Path, *, rank: int = 4, base_name: str | None = None, seed: int = 1
) -> Path:
    """The plain family's adapter: q/v only, alpha twice the rank, peft's random init."""
    return build_lora_adapter(
        folder,
        base,
        rank=rank,
        alpha=rank * 2,
        targets=("q_proj", "v_proj"),
        seed=seed,
        scale=None,
        base_name=base_name if base_name is not None else base.name,
    )


def peft_reference(base: Path, adapters: dict[str, Path], **model_kwargs: Any) -> Any:
    """The parity tests' reference: the base in float32 with every adapter loaded into one peft model
    (named by ``adapters``' keys, for ``adapter_names`` batches), in eval mode. ``model_kwargs`` go to
    ``from_pretrained`` (e.g. eager attention)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **model_kwargs)
    items = list(adapters.items())
    peft_model = PeftModel.from_pretrained(model, str(items[0][1]), adapter_name=items[0][0])
    for name, path in items[1:]:
        peft_model.load_adapter(str(path), adapter_name=name)
    return peft_model.eval()
