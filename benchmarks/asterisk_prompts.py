"""Real recorded isolated words at 8 kHz: Asterisk's English prompts, from Debian's packages.

Debian ships the Asterisk PBX's core prompts (Creative Commons BY-SA 3.0) as recorded: one
professional female US-English voice ("Allison"), studio-clean, spoken slowly and
carefully, at telephone quality. ``asterisk-core-sounds-en-wav`` holds them as 8 kHz 16-bit
WAV, ``asterisk-core-sounds-en-gsm`` as GSM 06.10 (the GSM full-rate phone codec), and
``asterisk-core-sounds-en`` the list of what each file says (``digits/1: one``).

One speaker, read prompts: a proxy for callers' isolated words (digits, spelled letters, a
word or three), better than synthetic speech but not a population of callers, accents and
handsets. The packages are fetched with ``apt-get download`` into a cache directory outside
the repository's tracked files and unpacked with ``dpkg-deb``.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

PACKAGES = ("asterisk-core-sounds-en", "asterisk-core-sounds-en-wav", "asterisk-core-sounds-en-gsm")
_SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
_LIST = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

# A spoken letter is scored right when the hypothesis is the letter itself ("B.", "b") or,
# since an isolated letter sounds exactly like them, a dictionary spelling of the letter's
# name or a true homophone of it ("bee", "be"; "why" for Y). "o" and "oh" both normalise to
# "0" already. The strict score (the letter only) is reported beside it.
LETTER_NAMES: dict[str, tuple[str, ...]] = {
    "a": (), "b": ("bee", "be"), "c": ("see", "sea", "cee"), "d": ("dee",), "e": ("ee",),
    "f": ("ef", "eff"), "g": ("gee",), "h": ("aitch", "haitch"), "i": ("eye", "aye"),
    "j": ("jay",), "k": ("kay",), "l": ("el", "ell"), "m": ("em",), "n": ("en",),
    "o": ("oh", "owe"), "p": ("pee", "pea"), "q": ("cue", "queue"), "r": ("are", "ar"),
    "s": ("es", "ess"), "t": ("tee", "tea"), "u": ("you", "yew"), "v": ("vee",),
    "w": ("double u", "double-u"), "x": ("ex",), "y": ("why", "wye"), "z": ("zee", "zed"),
}  # fmt: skip
# A one-word prompt is likewise right as any word that sounds the same: said alone, "for"
# is "four". (Inside a phrase the context decides, and only the prompt's words count.)
HOMOPHONES: dict[str, tuple[str, ...]] = {
    "for": ("four",), "four": ("for",), "two": ("to", "too"), "to": ("two", "too"),
    "one": ("won",), "eight": ("ate",), "no": ("know",), "new": ("knew",),
    "hours": ("ours",), "your": ("you're",),
}  # fmt: skip
# The list's own spellings corrected ("fourtieth"), or given the other usual spelling of
# the same spoken words (dictionaries give both; Whisper writes either).
REFERENCE_FIXES: dict[str, tuple[str, ...]] = {
    "digits/h-40": ("fortieth",),
    "digits/a-m": ("A.M.", "AM"),
    "digits/p-m": ("P.M.", "PM"),
    "phonetic/x_p": ("X-ray",),
    "lowercase": ("lowercase", "lower case"),
    "uppercase": ("uppercase", "upper case"),
}
# Not what a caller says: names of channel technologies (DAHDI, IAX, MGCP...), and the
# names of punctuation signs (letters/ascii*, "left brace").
_EXCLUDED = re.compile(r"^(spy-|letters/(?![a-z]$))")


@dataclass(frozen=True)
class Prompt:
    """One recorded prompt: its audio, what it says (any of ``refs``) and its category."""

    path: Path
    name: str
    refs: tuple[str, ...]
    category: str


def fetch(cache: Path) -> Path | None:
    """Download and unpack the three packages into ``cache`` once; the unpacked root.

    Returns None, saying why on stdout, when apt-get or dpkg-deb is missing or fails.
    """
    root = cache / "root"
    if (root / _LIST).is_file() and (root / _SOUNDS / "digits" / "1.gsm").is_file():
        return root
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        print(f"short_8khz_asterisk skipped: {' and '.join(missing)} not found (Debian tools)")
        return None
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["apt-get", "download", *PACKAGES], cwd=cache, capture_output=True, text=True
    )
    debs = sorted(cache.glob("asterisk-core-sounds-en*.deb"))
    if done.returncode != 0 or len(debs) < len(PACKAGES):
        print(f"short_8khz_asterisk skipped: apt-get download failed: {done.stderr.strip()}")
        return None
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def versions(cache: Path) -> list[str]:
    """The package files the set was read from (name_version_arch.deb)."""
    return sorted(p.name for p in cache.glob("asterisk-core-sounds-en*.deb"))


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w' -]+", " ", text.replace("...", " ")).split()


def _category(name: str) -> str:
    if re.fullmatch(r"digits/\d", name):
        return "digits"
    if re.fullmatch(r"letters/[a-z]", name):
        return "letters"
    return "words"


def _refs(name: str, text: str) -> tuple[str, ...]:
    if name.startswith("letters/"):
        return (text, *LETTER_NAMES[text])
    refs = REFERENCE_FIXES.get(name, (text,))
    words = _words(text)
    if len(words) == 1:
        refs += HOMOPHONES.get(words[0].lower(), ())
    # A closed compound is the same word as its hyphenated spelling ("De-activated").
    return refs + tuple(r.replace("-", "") for r in refs if "-" in r)


def prompts(root: Path, max_words: int = 3) -> list[Prompt]:
    """The isolated words and short prompts (1 to ``max_words`` words) of the list.

    Digits 0-9, letters a-z, and every other prompt of up to ``max_words`` spoken words:
    numbers, ordinals, days, months, NATO spelling words, and menu words and phrases
    ("goodbye", "thank you", "please try again"). Left out: tones and beeps (their list
    text is in brackets), channel-technology names and punctuation names (``_EXCLUDED``).
    """
    lines = gzip.decompress((root / _LIST).read_bytes()).decode("utf-8").splitlines()
    items: list[Prompt] = []
    for line in lines:
        name, sep, text = line.partition(": ")
        text = text.strip()
        if line.startswith(";") or not sep or _EXCLUDED.match(name):
            continue
        if any(c in text for c in "[]<>()") or not 0 < len(_words(text)) <= max_words:
            continue
        path = root / _SOUNDS / f"{name}.wav"
        if path.is_file():
            items.append(Prompt(path, name, _refs(name, text), _category(name)))
    return items


def gsm_copy(prompt: Prompt, out_dir: Path) -> Prompt:
    """The same prompt through the GSM 06.10 codec: its .gsm file decoded to 8 kHz PCM WAV.

    The product accepts WAV (not raw .gsm); a phone system that records GSM calls hands on
    what its decoder gives, which this is.
    """
    source = prompt.path.with_suffix(".gsm")
    with av.open(str(source), format="gsm") as container:
        pcm = np.concatenate(
            [f.to_ndarray().reshape(-1) for f in container.decode(container.streams.audio[0])]
        )
    target = out_dir / f"{prompt.name.replace('/', '-')}.wav"
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8_000)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return Prompt(target, prompt.name, prompt.refs, prompt.category)
