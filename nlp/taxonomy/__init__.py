"""Case-type taxonomies: schema, loading with located errors, and mapping texts onto case types."""

from nlp.taxonomy.errors import (
    Problem,
    TaxonomyError,
    TaxonomyMappingError,
    TaxonomyValidationError,
)
from nlp.taxonomy.examples import from_examples
from nlp.taxonomy.head import HeadOptions
from nlp.taxonomy.loader import content_hash, load_taxonomy, loads_taxonomy, validate_taxonomy
from nlp.taxonomy.mapper import CaseTypeMapper, Embed, MapInput, MapperOptions
from nlp.taxonomy.schema import CaseType, Taxonomy
from nlp.taxonomy.store import TaxonomyStore

__all__ = [
    "CaseType",
    "CaseTypeMapper",
    "Embed",
    "HeadOptions",
    "MapInput",
    "MapperOptions",
    "Problem",
    "Taxonomy",
    "TaxonomyError",
    "TaxonomyMappingError",
    "TaxonomyStore",
    "TaxonomyValidationError",
    "content_hash",
    "from_examples",
    "load_taxonomy",
    "loads_taxonomy",
    "validate_taxonomy",
]
