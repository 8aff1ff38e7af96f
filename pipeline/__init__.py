"""globaldarts: a global (CMA-ES) search over where DARTS searches start.

The package shows the two loops: ``spaces`` (the cell spaces), ``search`` (the inner
DARTS search), ``outer`` (the Optuna study around it), ``results`` (what studies found)
and ``cli`` (the command line); ``config`` and ``checkpoint`` serve them all.
"""

from __future__ import annotations

__version__ = "0.2.0"

from pipeline.config import ConfigError, StudyConfig, load  # noqa: E402
from pipeline.spaces import SPACES, DartsGenotype, NB201Genotype, get_space, parse_genotype  # noqa: E402

__all__ = ["SPACES", "ConfigError", "DartsGenotype", "NB201Genotype", "StudyConfig",
           "__version__", "get_space", "load", "parse_genotype"]
