"""Long audio is windowed at pauses, losing nothing."""

from __future__ import annotations

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.windows import windows
from tests.asr.conftest import SAY_RATE, Say, resample


def test_windows_cut_in_pauses_and_cover_everything(say: Say) -> None:
    """Cuts fall inside silences, and the windows put together are the original audio."""
    phrase = resample(say("This sentence must never be cut in the middle."), SAY_RATE, SAMPLE_RATE)
    gap = np.zeros(int(0.8 * SAMPLE_RATE), dtype=np.int16)
    pieces = [phrase, gap] * 8
    audio = (np.concatenate(pieces).astype(np.float32) / 32768.0).reshape(1, -1)
    chunks = [audio[:, i : i + SAMPLE_RATE] for i in range(0, audio.shape[1], SAMPLE_RATE)]
    out = list(windows(chunks, window_seconds=7.0, search_seconds=3.0))
    assert len(out) > 2
    joined = np.concatenate([w.audio for w in out], axis=1)
    assert np.array_equal(joined, audio)
    speech = np.zeros(audio.shape[1], dtype=bool)
    # espeak-ng pads its output with silence: speech is from the first to the last loud sample.
    loud = np.flatnonzero(np.abs(phrase) > 300)
    pos = 0
    for piece in pieces:
        if piece is phrase:
            speech[pos + loud[0] : pos + loud[-1]] = True
        pos += len(piece)
    for w in out[1:]:
        cut = round(w.offset * SAMPLE_RATE)
        assert not speech[cut], f"cut at {w.offset:.2f}s falls inside speech"
