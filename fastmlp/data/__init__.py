"""Catalog data: file formats, feature specs and missing values, the synthetic catalog, the one
standardiser and chunked streams (everything between a file on disk and a feature matrix)."""

from .catalog import (COLOR_FEATURES, MISSING_POLICIES, MISSING_VALUES, Catalog,  # noqa: F401
                      load_catalog)
from .formats import catalog_columns, catalog_format  # noqa: F401
from .standardize import Standardizer  # noqa: F401
from .stream import CatalogStream, Chunk, iter_chunks, predict_stream  # noqa: F401
from .synthetic import make_photometric_catalog  # noqa: F401

__all__ = ["Catalog", "Standardizer", "CatalogStream", "Chunk", "iter_chunks", "predict_stream",
           "load_catalog", "make_photometric_catalog", "catalog_columns", "catalog_format",
           "COLOR_FEATURES", "MISSING_POLICIES", "MISSING_VALUES"]
