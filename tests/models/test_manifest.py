"""The manifest agrees with the pins pip enforces and with the published Whisper base."""

from __future__ import annotations

from models.manifest import ROLES, Manifest, wheel_hashes

# Systran/faster-whisper-base@ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66 model.bin (Git LFS oid).
PUBLISHED_WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


class TestManifest:
    def test_every_role_has_hashed_files(self, manifest: Manifest) -> None:
        """Each role names at least one package and a sha256 for each of its files."""
        assert set(ROLES) <= set(manifest.roles)
        for role in manifest.roles.values():
            assert role.sources
            for source in role.sources:
                assert source.files
                assert all(len(f.sha256) == 64 and f.size > 0 for f in source.files)

    def test_wheel_hashes_match_requirements(self, manifest: Manifest) -> None:
        """The wheel sha256 and version of each package are the ones pip installs with."""
        pins = wheel_hashes()
        sources = [s for role in manifest.roles.values() for s in role.sources]
        assert {s.package.lower() for s in sources} == set(pins)
        for source in sources:
            assert pins[source.package.lower()] == (source.version, source.wheel_sha256)

    def test_joined_whisper_base_is_the_published_file(self, manifest: Manifest) -> None:
        """The joined model.bin is expected to be Systran's faster-whisper-base, byte for byte."""
        artifact = manifest.role("whisper-base").artifact
        assert artifact is not None
        entry = next(f for f in artifact.files if f.path == "model.bin")
        parts = [
            f
            for s in manifest.role("whisper-base").sources
            for f in s.files
            if f.path.startswith("data/model.bin.part")
        ]
        assert entry.sha256 == PUBLISHED_WHISPER_BASE_SHA256
        assert entry.size == sum(p.size for p in parts) == 145_217_532
