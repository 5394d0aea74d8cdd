"""Speaker roles: channel-based for stereo calls, a stated best guess for mono recordings.

Stereo: the layout says which channel is the agent, so roles are certain (confidence 1).
Mono: there is no diarisation model in the stack, so roles are a heuristic:
1. each segment gets a voice print (median pitch, weighted up, and the mean log-mel
   spectrum pooled into a few broad bands, which content affects less than fine bands); two-means
   clustering splits the segments into two voices when the clusters are well apart,
   otherwise everything is one voice;
2. the voice that uses agent phrases ("thank you for calling", "how can I help", ...) is the
   agent; without such cues, the voice that speaks first is (agents open calls);
   a single voice is the customer (a voice message or video feedback) unless it talks like
   an agent.
Each segment carries ``role_confidence`` saying how far to trust this.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import numpy.typing as npt
from faster_whisper.feature_extractor import FeatureExtractor

from asr.audio import SAMPLE_RATE, FloatArray
from asr.guards import RawSegment
from asr.options import TranscribeOptions
from asr.types import Segment, Speaker, Word

_AGENT_CUES = re.compile(
    r"thank(s| you) for (calling|contacting|holding|waiting|your patience)|how (can|may) i help"
    r"|my name is \w+ (and|speaking)|speaking[,.]? how|is there anything else"
    r"|let me (check|look|see)|i('ll| will) (transfer|put you)|for security|can i have your"
    r"|may i have your|account number|have a (great|nice|good) day|this call (is|may be) recorded",
    re.IGNORECASE,
)
_CUSTOMER_CUES = re.compile(
    r"\bi('d| would) like to (complain|cancel|return)|\bmy (order|account|bill|package|card)\b"
    r"|\bi('ve| have) been (waiting|charged|trying)|\bi want (a refund|to cancel|to speak)",
    re.IGNORECASE,
)
# Between-cluster distance over within-cluster spread above which two voices are assumed.
_MIN_SEPARATION = 4.0
_MIN_PITCH_GAP = 0.12


# Pitch gets this many feature slots: it is the cue that separates voices best and that the
# words spoken change least.
_PITCH_WEIGHT = 4
_BANDS = 8


def _median_log_pitch(audio: FloatArray) -> float:
    """Median log F0 over voiced 40 ms frames (autocorrelation, 60-400 Hz); 0 if unvoiced."""
    frame, hop = 640, 320
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    if len(audio) <= frame:
        return 0.0
    # All frames at once, autocorrelation through the FFT (zero-padded to 2x: no wrap-around):
    # a per-frame np.correlate loop cost ~2 s per 3 minutes of speech.
    starts = np.arange(0, len(audio) - frame, hop)
    frames = audio[starts[:, None] + np.arange(frame)].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    energy = (frames * frames).sum(axis=1)
    frames = frames[energy >= 1e-4]
    energy = energy[energy >= 1e-4]
    if not len(frames):
        return 0.0
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    ac = np.fft.irfft(spectrum * np.conj(spectrum), axis=1)[:, :hi]
    lags = lo + np.argmax(ac[:, lo:hi], axis=1)
    voiced = ac[np.arange(len(ac)), lags] / energy > 0.5
    if not voiced.any():
        return 0.0
    return float(np.median(np.log(SAMPLE_RATE / lags[voiced])))


def voice_print(audio: FloatArray, features: FeatureExtractor) -> npt.NDArray[np.float64]:
    """A segment's voice signature: weighted median log pitch and broad-band log-mel means."""
    mel = np.asarray(features(audio, padding=0), dtype=np.float64)
    bands = np.array_split(mel.mean(axis=1), _BANDS)
    broad = np.array([b.mean() for b in bands])
    return np.concatenate([np.full(_PITCH_WEIGHT, _median_log_pitch(audio)), broad])


def to_segment(raw: RawSegment, speaker: Speaker, confidence: float) -> Segment:
    """A library segment from a guarded raw one."""
    return Segment(
        start=raw.start,
        end=raw.end,
        speaker=speaker,
        text=raw.text,
        words=list(raw.words),
        role_confidence=confidence,
        avg_logprob=raw.avg_logprob,
        no_speech_prob=raw.no_speech_prob,
    )


def split_at_pauses(seg: RawSegment, pause: float, sentences: bool = False) -> list[RawSegment]:
    """Split a segment where its words are more than ``pause`` seconds apart.

    On one channel of a stereo call the other party's turn is silence, and Whisper (after
    the VAD joined the speech around it, or in a batched 30 s chunk) returns one segment
    spanning both of this speaker's turns; its word times show the gap. Split there, the
    turns interleave as spoken. ``sentences`` also splits after . ? ! (mono: each sentence
    then gets its own voice print for the roles).
    """
    if len(seg.words) < 2:
        return [seg]
    groups: list[list[Word]] = [[seg.words[0]]]
    for prev, word in itertools.pairwise(seg.words):
        if word.start - prev.end > pause or (sentences and prev.word.rstrip()[-1:] in ".?!"):
            groups.append([])
        groups[-1].append(word)
    if len(groups) == 1:
        return [seg]
    return [
        RawSegment(
            start=g[0].start,
            end=g[-1].end,
            text="".join(w.word for w in g).strip(),
            words=g,
            avg_logprob=seg.avg_logprob,
            no_speech_prob=seg.no_speech_prob,
            compression_ratio=seg.compression_ratio,
        )
        for g in groups
    ]


def split_turns(segments: list[RawSegment], options: TranscribeOptions) -> list[RawSegment]:
    """Every segment split at its pauses and sentence ends, before guards and turns.

    Pieces are judged by the guards one by one and (mono) get their own voice print;
    `merge_turns` joins a speaker's consecutive pieces back into turns afterwards.
    """
    return [p for seg in segments for p in split_at_pauses(seg, options.turn_gap_seconds, True)]


def merge_turns(segments: list[Segment], options: TranscribeOptions) -> list[Segment]:
    """Time-order segments and join a speaker's consecutive segments into turns."""
    turns: list[Segment] = []
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        prev = turns[-1] if turns else None
        if (
            prev is not None
            and prev.speaker == seg.speaker
            and seg.start - prev.end <= options.turn_gap_seconds
            and seg.end - prev.start <= options.max_turn_seconds
        ):
            turns[-1] = Segment(
                start=prev.start,
                end=max(prev.end, seg.end),
                speaker=prev.speaker,
                text=f"{prev.text} {seg.text}".strip(),
                words=prev.words + seg.words,
                role_confidence=min(prev.role_confidence, seg.role_confidence),
                avg_logprob=min(prev.avg_logprob, seg.avg_logprob),
                no_speech_prob=max(prev.no_speech_prob, seg.no_speech_prob),
            )
        else:
            turns.append(seg)
    return turns


def _two_means(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], float]:
    """Cluster rows into two groups; returns labels and a separation score."""
    # No per-dimension standardising: with a handful of segments it blows up content noise
    # in the spectral bands; in raw units (log Hz, log-mel) pitch dominates, as intended.
    # Deterministic start: the two rows farthest apart (around the first row's opposite).
    a = int(np.argmax(((x - x[0]) ** 2).sum(axis=1)))
    b = int(np.argmax(((x - x[a]) ** 2).sum(axis=1)))
    centres = x[[a, b]].copy()
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(20):
        dist = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        new = np.argmin(dist, axis=1).astype(np.int64)
        if (new == labels).all() and _ > 0:
            break
        labels = new
        for k in (0, 1):
            if (labels == k).any():
                centres[k] = x[labels == k].mean(axis=0)
    if not ((labels == 0).any() and (labels == 1).any()):
        return labels, 0.0
    spread = np.sqrt(((x - centres[labels]) ** 2).sum(axis=1)).mean() + 1e-6
    return labels, float(np.linalg.norm(centres[0] - centres[1]) / spread)


def _cue_score(texts: list[str]) -> int:
    joined = " ".join(texts)
    return len(_AGENT_CUES.findall(joined)) - len(_CUSTOMER_CUES.findall(joined))


def assign_mono_roles(
    raws: list[RawSegment], prints: list[npt.NDArray[np.float64]]
) -> list[Segment]:
    """Best-effort agent/customer labels for the segments of a mono recording."""
    if not raws:
        return []
    labels = np.zeros(len(raws), dtype=np.int64)
    separation = 0.0
    if len(raws) >= 4:
        x = np.stack(prints)
        voiced = x[:, 0] > 0
        if voiced.any():  # an unvoiced segment gets the typical pitch, not an outlier 0
            x[~voiced, :_PITCH_WEIGHT] = np.median(x[voiced, 0])
        labels, separation = _two_means(x)
        if separation >= _MIN_SEPARATION:
            gap = abs(x[labels == 0, 0].mean() - x[labels == 1, 0].mean())
            # Spectral bands alone also split one voice by what it says; two voices
            # must differ in pitch as well (~13%), or they are taken as one.
            if gap < _MIN_PITCH_GAP:
                separation = 0.0
    if separation < _MIN_SEPARATION:
        labels[:] = 0
    voices = sorted(set(labels.tolist()))
    if len(voices) == 1:
        score = _cue_score([r.text for r in raws])
        speaker: Speaker = "agent" if score > 0 else "customer"
        conf = 0.7 if score != 0 else 0.5
        return [to_segment(r, speaker, conf) for r in raws]
    scores = {
        v: _cue_score([r.text for r, lab in zip(raws, labels, strict=True) if lab == v])
        for v in voices
    }
    if scores[0] != scores[1]:
        agent_voice = 0 if scores[0] > scores[1] else 1
        role_evidence = 0.85
    else:
        agent_voice = int(labels[0])
        role_evidence = 0.6
    voice_quality = min(1.0, 0.5 + (separation - _MIN_SEPARATION) / 8)
    conf = round(role_evidence * voice_quality, 3)
    return [
        to_segment(r, "agent" if lab == agent_voice else "customer", conf)
        for r, lab in zip(raws, labels, strict=True)
    ]
