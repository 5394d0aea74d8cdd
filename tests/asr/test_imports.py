"""The upload probe path (the API process) must not pull in the transcription stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("ctranslate2", "faster_whisper", "onnxruntime", "tokenizers", "torch")


def _loaded_after(code: str) -> list[str]:
    script = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_probe_path_needs_only_pyav() -> None:
    """Importing asr, its probe and the API's upload check loads no Whisper runtime."""
    code = (
        "import asr\nfrom asr import probe, TranscribeOptions, AsrError, Transcript\n"
        "from asr.audio import stream_audio\nfrom workers.audio import probe_upload"
    )
    assert _loaded_after(code) == []


def test_transcriber_still_importable_from_the_package() -> None:
    """The lazy attribute resolves to the real Transcriber (and then loads faster-whisper)."""
    assert "faster_whisper" in _loaded_after("from asr import Transcriber")
