"""DARTS variants: each is one class in its own module, registered by name with
``@register``; the class's fields are its settings (keys of the study file's ``[search]``
section) and its methods the seams of the search it changes. Adding a variant is adding
its module and one import line below; the config, the search, ``bench``, the help texts
and the tests read the registry.

- DARTS- (Chu et al., ICLR 2021; Meituan-AutoML/DARTS-): an auxiliary skip connection.
- beta-DARTS (Ye et al., CVPR 2022; Sunshine-Ye/Beta-DARTS): the Beta-Decay regulariser.
- DrNAS (Chen et al., ICLR 2021; xiangning-chen/DrNAS): Dirichlet-sampled mixing weights.
- SDARTS-RS (Chen & Hsieh, ICML 2020; xiangning-chen/SmoothDARTS): noisy weight steps.
"""

from __future__ import annotations

from pipeline.variants import beta_darts, darts_minus, drnas, sdarts_rs  # noqa: F401
from pipeline.variants.base import (
    VARIANTS,
    Darts,
    build_variant,
    noise,
    register,
)

__all__ = ["VARIANTS", "Darts", "build_variant", "noise", "register"]
