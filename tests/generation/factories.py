"""The generation tests' tiny family (head_dim 64, GQA, larger weights, a BOS-prefixing tokenizer).

The one builder's defaults (tests/tiny_models.py), under the names these tests import.
"""

from __future__ import annotations

from tests.tiny_models import CHAT_TEMPLATE
from tests.tiny_models import build_base_model as make_base_model
from tests.tiny_models import build_lora_adapter as make_lora_adapter

__all__ = ["CHAT_TEMPLATE", "make_base_model", "make_lora_adapter"]
