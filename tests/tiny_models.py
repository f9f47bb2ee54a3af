"""Tiny random Llama models and LoRA adapters written to a folder, for tests that need odd shapes."""

from __future__ import annotations

import json
from pathlib import Path


def make_base_model(
    folder: Path, *, hidden: int = 128, layers: int = 1, vocab: int = 300, seed: int = 0
) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        head_dim=64,
        max_position_embeddings=256,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    vocab_map = {f"t{i}": i for i in range(vocab - 3)} | {
        "<unk>": vocab - 3,
        "<s>": vocab - 2,
        "</s>": vocab - 1,
    }
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    return folder


def make_lora_adapter(
    folder: Path, base: Path, *, rank: int = 4, base_name: str | None = None, seed: int = 1
) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(
        model,
        LoraConfig(r=rank, lora_alpha=rank * 2, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(folder, safe_serialization=True)
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_name if base_name is not None else base.name
    config_path.write_text(json.dumps(config))
    return folder
