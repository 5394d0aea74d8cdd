"""Assembly: the real Whisper base join, and the build stamp that makes setup idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.assemble import (
    STAMP_NAME,
    assemble_whisper_base,
    export_encoder_onnx,
    join_files,
)
from models.errors import AssemblyError
from models.manifest import Manifest, sha256_file
from models.verify import check_built_dir, check_files


class TestWhisperBaseJoin:
    def test_join_reproduces_manifest_hashes(self, manifest: Manifest, tmp_path: Path) -> None:
        """Joining the installed parts gives exactly the files the manifest lists."""
        out = tmp_path / "whisper-base"
        result = assemble_whisper_base(manifest, out)
        artifact = manifest.role("whisper-base").artifact
        assert artifact is not None
        assert result.outcome == "built"
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [STAMP_NAME, *(f.path for f in artifact.files)]
        )
        for entry in artifact.files:
            assert sha256_file(out / entry.path) == entry.sha256

    def test_second_run_is_up_to_date_and_rebuilds_a_lost_file(
        self, manifest: Manifest, tmp_path: Path
    ) -> None:
        """A second setup does nothing; a deleted output is rebuilt."""
        out = tmp_path / "whisper-base"
        assemble_whisper_base(manifest, out)
        assert assemble_whisper_base(manifest, out).outcome == "up to date"
        (out / "model.bin").unlink()
        assert assemble_whisper_base(manifest, out).outcome == "built"
        assert (out / "model.bin").stat().st_size == 145_217_532

    def test_corrupted_join_is_reported_by_name(self, manifest: Manifest, tmp_path: Path) -> None:
        """A flipped byte in the joined model.bin is named with both hashes."""
        out = tmp_path / "whisper-base"
        assemble_whisper_base(manifest, out)
        with (out / "model.bin").open("r+b") as handle:
            handle.seek(1000)
            byte = handle.read(1)
            handle.seek(1000)
            handle.write(bytes([byte[0] ^ 0xFF]))
        artifact = manifest.role("whisper-base").artifact
        assert artifact is not None
        problems = check_files("whisper-base", out, artifact.files, "rebuild")
        assert len(problems) == 1
        expected = next(f.sha256 for f in artifact.files if f.path == "model.bin")
        assert "model.bin" in problems[0]
        assert expected in problems[0]
        assert sha256_file(out / "model.bin") in problems[0]


class TestJoinFiles:
    def test_wrong_result_is_refused_and_not_left_behind(self, tmp_path: Path) -> None:
        """A join whose hash differs raises and leaves no file at the destination."""
        parts = [tmp_path / "a", tmp_path / "b"]
        parts[0].write_bytes(b"hello ")
        parts[1].write_bytes(b"world")
        destination = tmp_path / "joined"

        class Quiet:
            def begin(self, task: str, total_bytes: int | None) -> None: ...
            def advance(self, nbytes: int) -> None: ...
            def end(self, outcome: str) -> None: ...

        with pytest.raises(AssemblyError, match="joined"):
            join_files(parts, destination, "0" * 64, Quiet())
        assert sorted(tmp_path.iterdir()) == sorted(parts)


def _copying_exporter(calls: list[Path]):  # type: ignore[no-untyped-def]
    """An exporter that writes the two files a real export writes (the cache is under test)."""

    def export(src_dir: Path, out_dir: Path, *, adapter: Path | None = None) -> list[Path]:
        calls.append(src_dir)
        written = []
        for name in ("model.onnx", "model.int8.onnx"):
            (out_dir / name).write_bytes((src_dir / "config.json").read_bytes() + name.encode())
            written.append(out_dir / name)
        return written

    return export


class TestExportStamp:
    def test_export_runs_once_until_the_weights_change(self, tmp_path: Path) -> None:
        """Unchanged inputs skip the export; changed weights trigger a new one."""
        src = tmp_path / "encoder"
        src.mkdir()
        (src / "config.json").write_text('{"hidden_size": 8}')
        (src / "model.safetensors").write_bytes(b"weights-1")
        out = tmp_path / "artifacts" / "encoder-onnx"
        calls: list[Path] = []
        exporter = _copying_exporter(calls)

        first = export_encoder_onnx(src, out, exporter=exporter, recipe="t/1")
        second = export_encoder_onnx(src, out, exporter=exporter, recipe="t/1")
        assert (first.outcome, second.outcome, len(calls)) == ("built", "up to date", 1)
        assert check_built_dir("encoder", out) == []

        (src / "model.safetensors").write_bytes(b"weights-2, longer")
        assert export_encoder_onnx(src, out, exporter=exporter, recipe="t/1").outcome == "built"
        assert len(calls) == 2
        stamp = json.loads((out / STAMP_NAME).read_text())
        assert stamp["inputs"][str(src / "model.safetensors")]["sha256"] == sha256_file(
            src / "model.safetensors"
        )

    def test_tampered_export_is_reported(self, tmp_path: Path) -> None:
        """An ONNX file changed after export no longer matches its stamp."""
        src = tmp_path / "encoder"
        src.mkdir()
        (src / "config.json").write_text("{}")
        out = tmp_path / "encoder-onnx"
        export_encoder_onnx(src, out, exporter=_copying_exporter([]), recipe="t/1")
        (out / "model.int8.onnx").write_bytes(b"tampered")
        problems = check_built_dir("encoder", out)
        assert len(problems) == 1
        assert "model.int8.onnx" in problems[0]
        assert "undertone models setup" in problems[0]

    def test_failed_export_leaves_no_directory(self, tmp_path: Path) -> None:
        """An exporter that writes nothing is an error, and no half-built directory remains."""
        src = tmp_path / "encoder"
        src.mkdir()
        (src / "config.json").write_text("{}")
        out = tmp_path / "artifacts" / "encoder-onnx"

        def broken(src_dir: Path, out_dir: Path, *, adapter: Path | None = None) -> list[Path]:
            return []

        with pytest.raises(AssemblyError, match=r"model\.onnx"):
            export_encoder_onnx(src, out, exporter=broken, recipe="t/1")
        assert list((tmp_path / "artifacts").iterdir()) == []
