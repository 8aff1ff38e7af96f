"""The inner loop: a DARTS search of one supernet from one start point, with its data on
the device; it never imports Optuna. A search takes a supernet, batches and a callback per
epoch, and hands out and takes back its whole state for checkpoints."""

from __future__ import annotations

from pipeline.search.architect import Architect, ArchSettings
from pipeline.search.build import build_search
from pipeline.search.darts import DartsSearch, DivergedError, EpochRecord, WeightSettings
from pipeline.search.data import SearchData, prepare_data
from pipeline.search.population import Population, PopulationError
from pipeline.search.start import StartPoint, StartSpace, build_start_space

__all__ = ["ArchSettings", "Architect", "DartsSearch", "DivergedError", "EpochRecord",
           "Population", "PopulationError", "SearchData", "StartPoint", "StartSpace",
           "WeightSettings", "build_search", "build_start_space", "prepare_data"]
