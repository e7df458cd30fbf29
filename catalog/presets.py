"""Provider presets: how each STAC provider names Sentinel-2 L2A assets, as data.

Inside Sentinelle every band has one name (Earth Search v1's vocabulary: ``blue``, ``red``,
``nir``, ``swir16``, ``scl``...).  A preset maps those names to a provider's asset keys and
says how its digital numbers become reflectance, so the rest of the code never needs to know
who published an item.

Reflectance = DN × scale + offset.  Scale and offset come from the asset metadata when present
(``raster:bands`` in STAC 1.0, ``raster:scale``/``raster:offset`` in STAC 1.1); otherwise from
the preset's rule (processing baseline ≥ 04.00 adds a +1000 DN offset, i.e. offset −0.1).
Earth Search v1 declares offset −0.1 but has already removed it from the pixels when
``earthsearch:boa_offset_applied`` is true: that property wins over the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

#: Our band vocabulary: name → (Sentinel-2 band, native resolution in metres).
BANDS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "coastal": ("B01", 60),
        "blue": ("B02", 10),
        "green": ("B03", 10),
        "red": ("B04", 10),
        "rededge1": ("B05", 20),
        "rededge2": ("B06", 20),
        "rededge3": ("B07", 20),
        "nir": ("B08", 10),
        "nir08": ("B8A", 20),
        "nir09": ("B09", 60),
        "swir16": ("B11", 20),
        "swir22": ("B12", 20),
        "scl": ("SCL", 20),
    }
)

#: Bands that hold classes, not reflectance: never scaled, always resampled with nearest.
CLASS_BANDS = frozenset({"scl"})


@dataclass(frozen=True)
class Preset:
    """How one provider publishes Sentinel-2 L2A."""

    name: str
    title: str
    url: str | None  # STAC API root, when the provider has one
    collection: str
    assets: Mapping[str, str]  # our band name → provider asset key
    #: item property that, when true, says the BOA offset is already removed from the pixels
    offset_applied_property: str | None = None
    #: default scale when the asset declares none
    default_scale: float = 1e-4
    #: default offset is −0.1 from this processing baseline on, when the asset declares none
    offset_from_baseline: str | None = "04.00"
    #: prefer this ``alternate`` href (e.g. ``https`` over ``s3://``) when present
    alternate: str | None = None
    notes: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def _same_names() -> dict[str, str]:
    return {band: band for band in BANDS}


def _band_codes(suffix: bool) -> dict[str, str]:
    out = {}
    for band, (code, res) in BANDS.items():
        out[band] = f"{code}_{res}m" if suffix else code
    return out


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "earth-search": Preset(
            name="earth-search",
            title="Element 84 Earth Search v1 (AWS open data, COGs)",
            url="https://earth-search.aws.element84.com/v1",
            collection="sentinel-2-l2a",
            assets=_same_names(),
            offset_applied_property="earthsearch:boa_offset_applied",
            notes="Offset −0.1 declared but already applied when earthsearch:boa_offset_applied.",
        ),
        "planetary-computer": Preset(
            name="planetary-computer",
            title="Microsoft Planetary Computer (COGs on Azure, signed URLs)",
            url="https://planetarycomputer.microsoft.com/api/stac/v1",
            collection="sentinel-2-l2a",
            assets=_band_codes(suffix=False),
            notes="No scale/offset metadata: the baseline rule applies.  Hrefs must be signed "
            "(planetary-computer package) before reading.",
        ),
        "earth-search-v0": Preset(
            name="earth-search-v0",
            title="Earth Search v0 (legacy, sentinel-s2-l2a-cogs)",
            url=None,
            collection="sentinel-s2-l2a-cogs",
            assets=_band_codes(suffix=False),
            offset_from_baseline=None,
            notes="Items predate processing baseline 04.00; no offset.",
        ),
        "cdse": Preset(
            name="cdse",
            title="Copernicus Data Space Ecosystem STAC (STAC 1.1, JPEG 2000 in SAFE)",
            url="https://stac.dataspace.copernicus.eu/v1",
            collection="sentinel-2-l2a",
            assets=_band_codes(suffix=True),
            alternate="https",
            notes="Asset keys like B04_10m; hrefs s3://eodata with an https alternate (needs a "
            "CDSE token or S3 keys configured in GDAL).",
        ),
    }
)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (raises ``ValueError`` listing the known ones)."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown STAC provider preset {name!r}; known presets: {known}") from None


def guess_preset(item: Mapping) -> Preset:
    """The preset whose asset keys best match a raw STAC item dict (for ``preset='auto'``).

    Ties go to the first preset in :data:`PRESETS`; Planetary Computer comes before Earth Search
    v0 because its baseline rule is also right for v0's pre-04.00 items.
    """
    keys = set(item.get("assets", {}))
    return max(PRESETS.values(), key=lambda p: len(keys & set(p.assets.values())))
