"""Territories: the configuration blocks every territory-dependent thing is derived from.

``model`` parses and checks the blocks, ``areas`` turns an area spec into an outline,
``registry`` answers the adapters' questions from the served configuration, ``resources``
generates pygeoapi's collections from the blocks, ``extents`` keeps temporal extents live,
``commands`` bootstraps and checks a territory (``sentinelle territory add|check``).
"""

from sentinelle.territories.model import (
    AreaSpec,
    ImagerySource,
    LocalLayer,
    ProductInfo,
    Territory,
    TerritoryError,
    parse_territories,
)
from sentinelle.territories.registry import Registry, load_config, registry

__all__ = ["AreaSpec", "ImagerySource", "LocalLayer", "ProductInfo", "Registry", "Territory",
           "TerritoryError", "load_config", "parse_territories", "registry"]
