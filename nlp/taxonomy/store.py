"""A cache of mappers keyed by the taxonomy's content hash: reloading a file needs no restart."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from nlp.taxonomy.loader import content_hash, load_taxonomy
from nlp.taxonomy.mapper import CaseTypeMapper, Embed, MapperOptions
from nlp.taxonomy.schema import Taxonomy


class TaxonomyStore:
    """Builds a `CaseTypeMapper` per taxonomy version and keeps the most recent ones.

    `mapper_for_file(path)` re-reads the file when its size or mtime changed, so an edited
    taxonomy takes effect on the next call. Vectors of example texts are cached by text, so a
    new version that changes a few examples embeds only those. Thread-safe.
    """

    def __init__(
        self, embed: Embed, options: MapperOptions | None = None, max_mappers: int = 8
    ) -> None:
        self._embed = embed
        self._options = options or MapperOptions()
        self._max = max_mappers
        self._mappers: OrderedDict[str, CaseTypeMapper] = OrderedDict()
        self._files: dict[Path, tuple[int, int, str]] = {}  # path -> (mtime_ns, size, hash)
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()

    def mapper_for(self, taxonomy: Taxonomy) -> CaseTypeMapper:
        """The mapper of a validated taxonomy, built on first use of its content."""
        key = content_hash(taxonomy)
        with self._lock:
            mapper = self._mappers.get(key)
            if mapper is None:
                texts = CaseTypeMapper.texts_to_embed(taxonomy, self._options)
                new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
                if new:
                    self._vectors.update(zip(new, self._embed(new), strict=True))
                vectors = np.vstack([self._vectors[t] for t in texts])
                mapper = CaseTypeMapper(taxonomy, self._embed, self._options, vectors)
                self._mappers[key] = mapper
            self._mappers.move_to_end(key)
            while len(self._mappers) > self._max:
                self._mappers.popitem(last=False)
            return mapper

    def mapper_for_file(self, path: str | Path) -> CaseTypeMapper:
        """The mapper of a taxonomy file as it is now (validated; errors name file and line)."""
        path = Path(path).resolve()
        stat = path.stat()
        with self._lock:
            known = self._files.get(path)
            if (
                known
                and known[:2] == (stat.st_mtime_ns, stat.st_size)
                and known[2] in self._mappers
            ):
                self._mappers.move_to_end(known[2])
                return self._mappers[known[2]]
            mapper = self.mapper_for(load_taxonomy(path))
            self._files[path] = (stat.st_mtime_ns, stat.st_size, mapper.content_hash)
            return mapper
