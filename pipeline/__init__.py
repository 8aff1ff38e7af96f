"""globaldarts: a global (CMA-ES) search over where DARTS searches start."""

from __future__ import annotations

__version__ = "0.1.0"

from pipeline.config import ConfigError, StudyConfig, load  # noqa: E402
from pipeline.spaces import NB201Genotype  # noqa: E402

__all__ = ["ConfigError", "NB201Genotype", "StudyConfig", "__version__", "load"]
