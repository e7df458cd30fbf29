"""Provider presets: how each provider publishes its imagery, as data.

Inside Sentinelle every band has one name (Earth Search v1's vocabulary: ``blue``, ``red``,
``nir``, ``swir16``, ``scl``...).  A preset maps those names to a provider's asset keys, says
how its digital numbers become physical values, which cloud mask its products carry and what
data type and nodata its files use, so the rest of the code never needs to know who published
an item.  A source's configuration may override any band of its preset (:func:`with_assets`):
that is how a provider without a preset is declared.

Reflectance = DN × scale + offset.  Scale and offset come from the asset metadata when present
(``raster:bands`` in STAC 1.0, ``raster:scale``/``raster:offset`` in STAC 1.1); otherwise from
the preset's rule (processing baseline ≥ 04.00 adds a +1000 DN offset, i.e. offset −0.1).
Earth Search v1 declares offset −0.1 but has already removed it from the pixels when
``earthsearch:boa_offset_applied`` is true: that property wins over the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

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

#: Mask bands: classes, bit fields or probabilities, never scaled, always resampled with
#: nearest.  ``scl`` ESA scene classes; ``clm``/``mg2`` Theia/MAJA cloud and geophysical
#: bit masks; ``cloud`` a cloud probability (0–100).
MASK_BANDS = frozenset({"scl", "clm", "mg2", "cloud"})
#: Bands that hold classes, not reflectance: never scaled, always resampled with nearest.
CLASS_BANDS = MASK_BANDS
#: The band of single-band products (an NDVI series, a partner's raster).
VALUE = "value"
#: Data types a band may declare (GDAL names, lower case).
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
#: Kinds of sources: Sentinel-2 surface or top-of-atmosphere reflectance, or a product.
KINDS = ("optical", "product")


@dataclass(frozen=True)
class BandSpec:
    """How one band is published: its asset key and what the metadata may not say.
    ``None`` means "as the item (or the preset's rule) declares"."""

    key: str
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    dtype: str | None = None

    @classmethod
    def parse(cls, band: str, value: Any) -> BandSpec:
        """From a configuration entry: an asset key, or ``{key, scale, offset, nodata,
        dtype}`` (``ValueError`` naming the band otherwise)."""
        if isinstance(value, str) and value:
            return cls(value)
        if not isinstance(value, Mapping) or not value.get("key"):
            raise ValueError(f"assets.{band}: give the asset key, or a mapping with 'key' "
                             "and optionally scale, offset, nodata, dtype")
        unknown = set(value) - {"key", "scale", "offset", "nodata", "dtype"}
        if unknown:
            raise ValueError(f"assets.{band}: unknown key(s) {', '.join(sorted(unknown))}; "
                             "known: key, scale, offset, nodata, dtype")
        dtype = value.get("dtype")
        if dtype is not None and str(dtype).lower() not in DTYPES:
            raise ValueError(f"assets.{band}.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        try:
            numbers = {k: (None if value.get(k) is None else float(value[k]))
                       for k in ("scale", "offset", "nodata")}
        except (TypeError, ValueError):
            raise ValueError(f"assets.{band}: scale, offset and nodata must be numbers") \
                from None
        return cls(str(value["key"]), dtype=None if dtype is None else str(dtype).lower(),
                   **numbers)


@dataclass(frozen=True)
class Preset:
    """How one provider publishes one kind of imagery."""

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
    #: the cloud mask its products carry (a :mod:`~sentinelle.catalog.masks` type)
    mask: str = "scl"
    #: processing level: ``L2A`` (surface reflectance) or ``L1C`` (top of atmosphere)
    level: str = "L2A"
    #: ``optical`` (Sentinel-2 bands) or ``product`` (one band of values: :data:`VALUE`)
    kind: str = "optical"
    #: data type and nodata of its files when the metadata does not say (None: read the file)
    dtype: str | None = None
    nodata: float | None = 0
    #: how items are listed: ``stac`` (a STAC catalog or API) or ``theia`` (product folders)
    layout: str = "stac"
    notes: str = ""
    #: per-band overrides (:class:`BandSpec`) from the source's configuration
    overrides: Mapping[str, BandSpec] = field(default_factory=dict)

    def asset_key(self, band: str) -> str | None:
        spec = self.overrides.get(band)
        return spec.key if spec is not None else self.assets.get(band)

    @property
    def band_keys(self) -> dict[str, str]:
        """Our band name → asset key, overrides included."""
        keys = dict(self.assets)
        keys.update({band: spec.key for band, spec in self.overrides.items()})
        return keys


def _same_names() -> dict[str, str]:
    return {band: band for band in BANDS}


def _band_codes(suffix: bool) -> dict[str, str]:
    out = {}
    for band, (code, res) in BANDS.items():
        out[band] = f"{code}_{res}m" if suffix else code
    return out


def _theia_assets() -> dict[str, str]:
    """Theia/MAJA file suffixes: ``FRE_B4`` (flat reflectance), masks in ``MASKS/``."""
    out = {band: f"FRE_{code.replace('B0', 'B')}" for band, (code, _) in BANDS.items()
           if band not in ("coastal", "nir09", "scl")}
    return {**out, "clm": "CLM_R2", "mg2": "MG2_R2"}


def _no_scl(assets: Mapping[str, str]) -> dict[str, str]:
    return {band: key for band, key in assets.items() if band != "scl"}


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "earth-search": Preset(
            name="earth-search",
            title="Element 84 Earth Search v1 (AWS open data, COGs)",
            url="https://earth-search.aws.element84.com/v1",
            collection="sentinel-2-l2a",
            assets=_same_names(),
            offset_applied_property="earthsearch:boa_offset_applied",
            dtype="uint16",
            notes="Offset −0.1 declared but already applied when earthsearch:boa_offset_applied.",
        ),
        "planetary-computer": Preset(
            name="planetary-computer",
            title="Microsoft Planetary Computer (COGs on Azure, signed URLs)",
            url="https://planetarycomputer.microsoft.com/api/stac/v1",
            collection="sentinel-2-l2a",
            assets=_band_codes(suffix=False),
            dtype="uint16",
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
            dtype="uint16",
            notes="Items predate processing baseline 04.00; no offset.  MGRS tile from "
            "sentinel:utm_zone (or proj:epsg), sentinel:latitude_band, sentinel:grid_square.",
        ),
        "cdse": Preset(
            name="cdse",
            title="Copernicus Data Space Ecosystem STAC (STAC 1.1, JPEG 2000 in SAFE)",
            url="https://stac.dataspace.copernicus.eu/v1",
            collection="sentinel-2-l2a",
            assets=_band_codes(suffix=True),
            alternate="https",
            dtype="uint16",
            notes="Asset keys like B04_10m; hrefs s3://eodata with an https alternate (needs a "
            "CDSE token or S3 keys configured in GDAL).",
        ),
        "theia": Preset(
            name="theia",
            title="Theia / MAJA Level-2A (CNES, French land data centre; product folders)",
            url=None,
            collection="SENTINEL2_L2A_THEIA",
            assets=_theia_assets(),
            offset_from_baseline=None,
            mask="theia-clm",
            dtype="int16",
            nodata=-10000,
            layout="theia",
            notes="FRE (flat reflectance) bands ×10,000, nodata −10000 (not declared in the "
            "files); clouds and shadows in MASKS/*_CLM_R2.tif (bit field, 0 = clear).",
        ),
        "earth-search-l1c": Preset(
            name="earth-search-l1c",
            title="Element 84 Earth Search v1, Sentinel-2 Level-1C (top of atmosphere)",
            url="https://earth-search.aws.element84.com/v1",
            collection="sentinel-2-l1c",
            assets=_no_scl(_same_names()),
            mask="none",
            level="L1C",
            dtype="uint16",
            notes="Top-of-atmosphere reflectance, no cloud mask: indices are computed "
            "unmasked and max_cloud cannot be measured.",
        ),
        "cdse-l1c": Preset(
            name="cdse-l1c",
            title="Copernicus Data Space Ecosystem, Sentinel-2 Level-1C",
            url="https://stac.dataspace.copernicus.eu/v1",
            collection="sentinel-2-l1c",
            assets={band: code for band, (code, _) in BANDS.items() if band != "scl"},
            alternate="https",
            mask="none",
            level="L1C",
            dtype="uint16",
            notes="Top-of-atmosphere reflectance, asset keys B04…; no cloud mask.",
        ),
        "product": Preset(
            name="product",
            title="A single-band product (an index series, a partner's raster)",
            url=None,
            collection="",
            assets={VALUE: "data"},
            default_scale=1.0,
            offset_from_baseline=None,
            mask="none",
            kind="product",
            dtype=None,
            nodata=None,
            notes="One asset per item (key 'data' unless the source says otherwise); values "
            "as stored, × scale + offset when the metadata declares them.",
        ),
    }
)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (raises ``ValueError`` listing the known ones)."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown provider preset {name!r}; known presets: {known}") from None


def with_assets(preset: Preset, assets: Mapping[str, Any] | None) -> Preset:
    """``preset`` with the bands of a source's ``assets:`` configuration overriding its own
    (our band name → asset key, or ``{key, scale, offset, nodata, dtype}``)."""
    if not assets:
        return preset
    if not isinstance(assets, Mapping):
        raise ValueError("assets: a mapping of band names to asset keys")
    known = set(BANDS) | MASK_BANDS | {VALUE}
    unknown = sorted(set(assets) - known)
    if unknown:
        raise ValueError(f"assets: unknown band name(s) {', '.join(unknown)}; Sentinelle's "
                         f"band names are {', '.join(sorted(known))}")
    overrides = {str(band): BandSpec.parse(str(band), value) for band, value in assets.items()}
    return replace(preset, overrides=MappingProxyType({**preset.overrides, **overrides}))


def guess_preset(item: Mapping) -> tuple[Preset, str]:
    """The preset for a raw STAC item dict (``preset: auto``) and why it was chosen.

    The collection id and provider-specific properties decide first (Earth Search v0 and
    Planetary Computer share asset keys); otherwise the preset whose asset keys best match."""
    props = item.get("properties", {})
    keys = set(item.get("assets", {}))
    collection = str(item.get("collection") or "")
    if collection == "sentinel-s2-l2a-cogs" or any(k.startswith("sentinel:") for k in props):
        return PRESETS["earth-search-v0"], (
            f"collection {collection!r} and sentinel:* properties are Earth Search v0's")
    if "earthsearch:boa_offset_applied" in props or "earthsearch:s3_path" in props:
        return PRESETS["earth-search"], "earthsearch:* properties are Earth Search v1's"
    if collection == "sentinel-2-l1c" or props.get("processing:level") == "L1C" \
            or str(props.get("s2:product_type", "")).endswith("1C"):
        preset = PRESETS["cdse-l1c"] if keys & set(PRESETS["cdse-l1c"].assets.values()) \
            and "blue" not in keys else PRESETS["earth-search-l1c"]
        return preset, f"collection {collection!r} / product type is Level-1C"
    scores = {p.name: len(keys & set(p.assets.values())) for p in PRESETS.values()
              if p.layout == "stac" and p.kind == "optical" and p.level == "L2A"}
    best = max(scores, key=lambda name: scores[name])
    if scores[best] == 0:
        return PRESETS["product"], "no Sentinel-2 band among the asset keys: a product"
    if best == "planetary-computer" and "s2:mgrs_tile" not in props:
        return PRESETS[best], (f"{scores[best]} asset keys like B04 (Planetary Computer's "
                               "naming; no provider-specific property)")
    return PRESETS[best], f"{scores[best]} asset keys match {PRESETS[best].title}"
