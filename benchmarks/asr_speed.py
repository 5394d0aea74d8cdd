"""Speed of the transcription pipeline against bare faster-whisper, as ratios in one run.

    python -m benchmarks.asr_speed --data-dir ../shared/data [--model base] [--repeats 2]

Two inputs built from the real LJ Speech clips in ../shared/data/asr_audio:
- speech-dense: the 25 clips back to back (target: ours within 1.15x of bare);
- call-like: the same clips with 40% of the time filled by silence with line hiss and by
  synthetic hold music (target: ours at least 1.5x faster than bare).
"Bare" is ``WhisperModel.transcribe(path)`` with default options, segments materialised;
"ours" is ``asr.Transcriber.transcribe`` (streamed PyAV decode, VAD, windows, guards, word
timestamps, speaker labels). Turn scoring and storage belong to the recording job and are
not in this measurement. Each run is its own subprocess, so its peak RSS is its own;
the best of ``--repeats`` wall times is kept (the machine is shared).
Results: benchmarks/results/asr_speed.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "asr_speed.json"
RATE = 22_050  # LJ Speech's rate


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)


def _write(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(audio, -32768, 32767).astype(np.int16).tobytes())


def hold_music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A quiet looping chord progression with a beat: what callers hear on hold."""
    t = np.arange(int(seconds * RATE)) / RATE
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6)]
    out = np.zeros_like(t)
    for i, start in enumerate(np.arange(0, seconds, 1.5)):
        mask = (t >= start) & (t < start + 1.5)
        for f in chords[i % len(chords)]:
            out[mask] += np.sin(2 * np.pi * f * t[mask]) * np.exp(-(t[mask] - start) * 1.5)
    return out * 2500 + rng.normal(0, 30, len(t))


def build_inputs(data_dir: Path, out_dir: Path) -> dict[str, Path]:
    wavs = sorted(
        (data_dir / "asr_audio" / "ljspeech_subset" / "LJSpeech-1.1" / "wavs").glob("*.wav")
    )
    clips = [_read(p) for p in wavs]
    rng = np.random.default_rng(0)
    dense = np.concatenate([np.concatenate([c, np.zeros(int(0.3 * RATE))]) for c in clips])
    call: list[np.ndarray] = []
    for i, clip in enumerate(clips):
        call.append(clip)
        gap = len(clip) * 0.4 / 0.6 / RATE  # 40% of the time is not speech
        filler = hold_music(gap, rng) if i % 2 else rng.normal(0, 40, int(gap * RATE))
        call.append(filler)
    paths = {"speech_dense": out_dir / "dense.wav", "call_like": out_dir / "call.wav"}
    _write(paths["speech_dense"], dense)
    _write(paths["call_like"], np.concatenate(call))
    return paths


def run_one(variant: str, model_dir: str, audio: str) -> dict[str, Any]:
    """In a child process: load the model, transcribe once, report time and words."""
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    from faster_whisper import WhisperModel

    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=2)
    t0 = time.perf_counter()
    if variant == "bare":
        segments, info = model.transcribe(audio)
        text = " ".join(s.text for s in segments)
        duration = info.duration
    else:
        from asr import Transcriber

        transcript = Transcriber(model).transcribe(audio)
        text, duration = transcript.text, transcript.duration
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "audio_seconds": duration, "words": len(text.split())}


def measure(variant: str, model_dir: Path, audio: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.asr_speed",
        "--child",
        variant,
        str(model_dir),
        str(audio),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"{variant} run failed: {out}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["rtf"] = result["seconds"] / result["audio_seconds"]
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(run_one(sys.argv[2], sys.argv[3], sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", choices=["base", "tiny.en"], default="base")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from service.config import Settings
    from workers.transcribe import whisper_model_dir

    model_dir = whisper_model_dir(Settings(), args.model)
    results: dict[str, Any] = {"model": args.model, "cpu_threads": 2, "inputs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = build_inputs(args.data_dir, Path(tmp))
        for name, audio in inputs.items():
            runs: dict[str, list[dict[str, Any]]] = {"bare": [], "ours": []}
            for _ in range(args.repeats):
                for variant in ("bare", "ours"):  # interleaved: load drifts hit both alike
                    runs[variant].append(measure(variant, model_dir, audio))
            best = {v: min(r, key=lambda x: x["seconds"]) for v, r in runs.items()}
            entry = {
                **best,
                "ours_over_bare_time": best["ours"]["seconds"] / best["bare"]["seconds"],
                "speedup_vs_bare": best["bare"]["seconds"] / best["ours"]["seconds"],
                "all_seconds": {v: [round(x["seconds"], 2) for x in r] for v, r in runs.items()},
            }
            results["inputs"][name] = entry
            print(
                f"{name}: bare {best['bare']['seconds']:.1f}s (RTF {best['bare']['rtf']:.3f}, "
                f"{best['bare']['peak_rss_mb']:.0f} MB), ours {best['ours']['seconds']:.1f}s "
                f"(RTF {best['ours']['rtf']:.3f}, {best['ours']['peak_rss_mb']:.0f} MB), "
                f"ours/bare time {entry['ours_over_bare_time']:.2f}",
                flush=True,
            )
    results["targets"] = {
        "speech_dense": "ours_over_bare_time <= 1.15",
        "call_like": "speedup_vs_bare >= 1.5",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
