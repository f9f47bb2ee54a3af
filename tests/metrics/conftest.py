"""Shared fixtures for the metrics tests: heavy models load once per session."""

import os

import pytest

# evaluate and huggingface_hub must never reach for the network in these tests.
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedding_model():
    from metrics.text import get_embedding_model

    return get_embedding_model()


@pytest.fixture(scope="session")
def pii_analyzer():
    from metrics.pii import get_analyzer

    return get_analyzer()
