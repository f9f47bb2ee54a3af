"""Tiny random Llama models (head_dim 64, GQA) and random LoRA adapters written to a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = "<s> {% for m in messages %}t1 {{ m['content'] }} t2 {% endfor %}{% if add_generation_prompt %}t3 {% endif %}"


def make_base_model(
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
) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        PreTrainedTokenizerFast,
    )

    config_class, model_class = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM),
    }[architecture]

    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {}
    if rope_scaling is not None:
        kwargs["rope_scaling"] = rope_scaling
    config = config_class(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=64,
        max_position_embeddings=max_positions,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 3,
        tie_word_embeddings=tie,
        **kwargs,
    )
    model = model_class(config)
    # Larger weights than the default init, so that random models make confident, varied choices.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    vocab_map = {f"t{i}": i for i in range(vocab - 3)} | {
        "<pad>": vocab - 3,
        "<s>": vocab - 2,
        "</s>": vocab - 1,
    }
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # Like Llama's tokenizer: BOS in front of every encoded text.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab - 2)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<pad>", pad_token="<pad>"
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return folder


def make_lora_adapter(
    folder: Path,
    base: Path,
    *,
    rank: int = 4,
    alpha: int = 8,
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    seed: int = 1,
    scale: float = 0.3,
    rslora: bool = False,
    zero_b: bool = False,
    alpha_pattern: dict[str, int] | None = None,
) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(targets),
        lora_dropout=0.0,
        use_rslora=rslora,
        alpha_pattern=alpha_pattern or {},
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.zero_() if zero_b else p.normal_(0, scale)
            elif "lora_A" in name:
                p.normal_(0, scale)
    peft_model.save_pretrained(folder)
    cfg_file = folder / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = str(base)
    cfg_file.write_text(json.dumps(cfg, indent=2))
    return folder
