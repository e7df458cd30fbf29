"""OGC API Coverages over a territory's imagery: the bands (``<territory>-s2``), an index
(``<territory>-ndvi``) or a single-band product (``<territory>-<source>``).

A thin pygeoapi ``coverage`` provider: it parses the request once, then everything goes through
:func:`sentinelle.catalog.imagery.read_imagery` (search with the cloud over the area measured
by the source's mask → lazy Dask cube → cloud mask → one date or a composite → clip) and
:func:`sentinelle.analysis.indices.compute_index`; errors go through
:mod:`sentinelle.providers.errors`.  Which catalog, preset, mask, area, composite method and
grid are used comes from the territory block (:mod:`sentinelle.territories`).

What a request gets:

* **where**: ``bbox`` (+ ``bbox-crs``, CRS84 by default) or ``subset=x(a:b),y(c:d)`` in the
  collection's native CRS (the scenes' UTM zone), intersected with the territory's area;
  nothing = the whole area.  Pixels outside the area are nodata.
* **when** (``datetime`` or ``subset=time(...)``): a day (a time of day is ignored) gives that
  date — raw, unmasked values for the bands; cloud-masked for an index; an interval gives a
  cloud-masked temporal composite (the source's ``composite``, median by default); nothing
  gives the latest date at most ``max_cloud`` % cloudy over the requested area (any latest
  date when the source has no cloud mask).
* **grid**: the source's resolution (10 m), in the scenes' UTM zone, or in ``bbox-crs`` when
  that is a projected CRS (pygeoapi 0.21 does not pass ``crs`` to coverage providers); edges
  on multiples of the resolution, so a request lands exactly on the Sentinel-2 pixels.  A
  source with ``grid: native`` (the default for products) is served on its own CRS, pixel
  size and pixel edges, never resampled.
* **values**: float32 reflectance (``DN × scale + offset`` of each scene, e.g.
  ``DN × 0.0001 − 0.1``), NaN = nodata; the mask band (``scl``…) = codes (one date only); the
  index or the product's values as float32.  ``f=GTiff`` gives a Cloud Optimized GeoTIFF
  (CRS, NaN nodata, band descriptions, scale 1 / offset 0, tags with the dates, scenes and
  whether clouds were masked); CoverageJSON is for small requests (``max_coveragejson_values``,
  250,000 values by default, else 413 pointing to ``f=GTiff``).
* **size**: bounded by the pixel budget (``SENTINELLE_MAX_PIXELS``, dates × bands × pixels)
  before anything is read: 413 with the limit in the message.

The constructor only reads the configuration (pygeoapi builds a provider per request); the
collection metadata (``_coverage_properties``) is computed when pygeoapi asks for it, from the
cached catalog.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from typing import Any

import numpy as np
from pygeoapi.provider.base import BaseProvider

from sentinelle.analysis.indices import compute_index, get_index
from sentinelle.catalog.area import CRS84, Area, Grid, crs_uri, parse_crs
from sentinelle.catalog.imagery import native_grid, read_imagery, scene_word
from sentinelle.catalog.presets import VALUE
from sentinelle.catalog.source import Catalog
from sentinelle.encode import to_cog
from sentinelle.errors import InvalidInput, NoData, SourceUnavailable, TooLarge
from sentinelle.providers.errors import provider_errors
from sentinelle.rendering import (
    compute,
    parse_when,
    request_area,
    resolve_when,
    scenes_for,
)
from sentinelle.settings import Limits

LOGGER = logging.getLogger(__name__)

#: Band → (Sentinel-2 band, centre wavelength nm, French title, English title).
BANDS: dict[str, tuple[str, int | None, str, str]] = {
    "coastal": ("B01", 443, "Aérosols côtiers", "Coastal aerosol"),
    "blue": ("B02", 490, "Bleu", "Blue"),
    "green": ("B03", 560, "Vert", "Green"),
    "red": ("B04", 665, "Rouge", "Red"),
    "rededge1": ("B05", 705, "Limite du rouge 1", "Red edge 1"),
    "rededge2": ("B06", 740, "Limite du rouge 2", "Red edge 2"),
    "rededge3": ("B07", 783, "Limite du rouge 3", "Red edge 3"),
    "nir": ("B08", 842, "Proche infrarouge", "Near infrared"),
    "nir08": ("B8A", 865, "Proche infrarouge étroit", "Narrow near infrared"),
    "swir16": ("B11", 1610, "Infrarouge moyen 1,6 µm", "Shortwave infrared 1.6 µm"),
    "swir22": ("B12", 2190, "Infrarouge moyen 2,2 µm", "Shortwave infrared 2.2 µm"),
}
#: mask bands: French and English titles
MASK_TITLES = {
    "scl": ("Classification de scène (classes ESA)",
            "SCL: scene classification (ESA classes 0–11)"),
    "clm": ("Masque de nuages Theia/MAJA (champ de bits)", "CLM: Theia/MAJA cloud mask (bits)"),
    "mg2": ("Masque géophysique Theia/MAJA (champ de bits)",
            "MG2: Theia/MAJA geophysical mask (bits)"),
    "cloud": ("Probabilité de nuage (%)", "Cloud probability (%)"),
}
DEFAULT_BANDS = ("blue", "green", "red", "nir", "swir16")
MAX_COVERAGEJSON_VALUES = 250_000
GTIFF = "GTiff"
TEMPORAL_RS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"


class ImageryCollection:
    """The configuration of one imagery collection (shared by the coverage and map providers).

    ``options`` (generated from the territory blocks, :mod:`sentinelle.territories`):
    ``territory`` and ``source`` name the imagery source, whose catalog, preset, cloud mask,
    composite method, cloud threshold, resolution and grid are used; ``index`` (e.g. ``NDVI``;
    absent = the bands, or the values of a product source), ``bands``,
    ``max_coveragejson_values``, ``name`` (the collection id, used in messages).  Nothing is
    read until used.
    """

    def __init__(self, data: str, options: dict | None):
        from sentinelle.territories import registry

        options = dict(options or {})
        if not options.get("territory") or not options.get("source"):
            raise InvalidInput("an imagery collection needs options.territory and "
                               "options.source (generated from the territories' blocks)")
        self.registry = registry()
        self.spec = self.registry.source(str(options["territory"]), str(options["source"]))
        self.name = str(options.get("name") or self.spec.collection_id)
        index = options.get("index")
        self.index = get_index(index).name if index else None
        self.product = self.spec.product
        self.composite = self.spec.composite
        self.max_cloud = self.spec.max_cloud
        self.resolution = self.spec.resolution
        self.grid = self.spec.grid
        self.max_coveragejson_values = int(options.get("max_coveragejson_values",
                                                       MAX_COVERAGEJSON_VALUES))
        if self.product is not None:
            self.bands: tuple[str, ...] = (VALUE,)
        else:
            mask_band = self.catalog.mask.band
            wanted = options.get("bands") or [*DEFAULT_BANDS, *([mask_band] if mask_band
                                                                else [])]
            self.bands = tuple(b for b in wanted if b in BANDS or b == mask_band)
            unknown = [b for b in wanted if b not in self.bands]
            if unknown:
                raise InvalidInput(f"unknown band(s) {', '.join(unknown)}; known: "
                                   f"{', '.join(BANDS)}")

    @property
    def catalog(self) -> Catalog:
        return self.spec.open()

    @functools.cached_property
    def area(self) -> Area:
        return self.registry.area(self.spec.territory)

    @property
    def masked(self) -> bool:
        """Whether the source has a cloud mask."""
        return self.catalog.mask.masks

    @property
    def fields(self) -> dict[str, dict]:
        """pygeoapi fields: one per band, the index, or the product's values."""
        if self.product is not None:
            product = self.product
            return {product.name: {"type": "number", "title": product.title["fr"],
                                   "description": f"{product.title['en']} "
                                                  f"({product.range[0]:g} – "
                                                  f"{product.range[1]:g} {product.unit})",
                                   "x-ogc-unit": product.unit}}
        if self.index:
            spec = get_index(self.index)
            return {spec.name: {"type": "number", "title": spec.title["fr"],
                                "description": f"{spec.title['en']}: {spec.formula}",
                                "x-ogc-unit": "1"}}
        fields = {}
        for band in self.bands:
            if band in MASK_TITLES:
                fr, en = MASK_TITLES[band]
                fields[band] = {"type": "integer", "title": fr, "description": en}
                continue
            code, wavelength, fr, en = BANDS[band]
            fields[band] = {"type": "number", "title": f"{fr} ({code})",
                            "description": f"{en} ({code}, {wavelength} nm), "
                                           "reflectance", "x-ogc-unit": "1"}
        return fields

    def read_bands(self, names: list[str]) -> list[str]:
        """The source's bands that make the fields ``names``."""
        if self.product is not None:
            return [VALUE]
        if self.index:
            return list(get_index(self.index).bands)
        return list(names)

    def native_crs(self, area: Area | None = None):
        """The CRS of most scenes over ``area`` (the collection's storage CRS)."""
        scenes = self.catalog.find(area or self.area)
        if not scenes:
            raise NoData(f"no {scene_word(self.catalog)} covers {self.name}; check its territory's "
                         "area and the catalog (`sentinelle territory check`)")
        return parse_crs(Counter(s.epsg for s in scenes).most_common(1)[0][0])


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _bbox_from_subsets(subsets: dict) -> list[float] | None:
    """``x(a:b)``/``y(c:d)`` (both needed) → a bbox in the native CRS."""
    if "x" not in subsets and "y" not in subsets:
        return None
    if "x" not in subsets or "y" not in subsets:
        raise InvalidInput("subset needs both x(min:max) and y(min:max) in the native CRS "
                           "(or use bbox with bbox-crs)")
    values = []
    for axis in ("x", "y"):
        pair = subsets[axis]
        if len(pair) != 2:
            raise InvalidInput(f"subset {axis} needs a range {axis}(min:max), got {pair}")
        try:
            values.append([float(v) for v in pair])
        except (TypeError, ValueError):
            raise InvalidInput(f"subset {axis} values must be numbers, got {pair}") from None
    (x1, x2), (y1, y2) = values
    return [x1, y1, x2, y2]


def _when_from_subsets(subsets: dict) -> str | None:
    if "time" not in subsets:
        return None
    values = [str(v) for v in subsets["time"]]
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return f"{values[0]}/{values[1]}"
    raise InvalidInput('subset time takes one date or a range: time("2024-05-17") or '
                       'time("2024-05-01":"2024-09-30")')


class SentinelCoverageProvider(BaseProvider):
    """pygeoapi coverage provider for one imagery collection (see the module docstring)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        with provider_errors():
            self.collection = ImageryCollection(self.data, self.options)
        self._fields = self.collection.fields
        self.axes = ["x", "y", "time"]
        self.num_bands = len(self._fields)
        format_ = provider_def.get("format") or {}
        self.native_format = format_.get("name", GTIFF)

    def get_fields(self):
        return self._fields

    # --- collection metadata (read by pygeoapi's describe-collection) --------------------------

    @functools.cached_property
    def _coverage_properties(self) -> dict[str, Any]:
        with provider_errors():
            try:
                return self._describe()
            except SourceUnavailable as err:
                # the catalog (an upstream STAC API) is down: describe the collection from
                # its configuration, without dates, rather than fail the description
                LOGGER.warning("%s described without its catalog: %s", self.collection.name, err)
                return self._describe(offline=True)

    def _describe(self, *, offline: bool = False) -> dict[str, Any]:
        coll = self.collection
        area = coll.area
        scenes = [] if offline else coll.catalog.find(area)
        if scenes:
            crs = parse_crs(Counter(s.epsg for s in scenes).most_common(1)[0][0])
            grid = native_grid(scenes, coll.read_bands(list(self._fields)), area) \
                if coll.grid == "native" else Grid.from_area(area, crs, coll.resolution)
            crs = grid.crs
        else:  # the catalog is down, or holds nothing over the territory yet: the area's
            # UTM zone stands for the scenes', and there are no dates
            lon, lat = area.to_crs(CRS84).geometry.centroid.coords[0]
            crs = parse_crs((32600 if lat >= 0 else 32700) + int((lon + 180) // 6) % 60 + 1)
            grid = Grid.from_area(area, crs, coll.resolution)
        lonlat = [round(v, 6) for v in area.lonlat_bounds]
        dates = sorted({_iso(s.datetime) for s in scenes})
        self.crs = crs_uri(crs)
        properties = {
            "bbox": lonlat,
            "bbox_crs": crs_uri(CRS84),
            "crs_type": "ProjectedCRS",
            "bbox_units": "m",
            "x_axis_label": "x",
            "y_axis_label": "y",
            "time_axis_label": "time",
            "axes": list(self.axes),
            "width": grid.shape[1],
            "height": grid.shape[0],
            "resx": grid.resolution,
            "resy": grid.resolution,
            "num_bands": self.num_bands,
            "uad": {
                "spatial": {
                    "bbox": [lonlat],
                    "crs": crs_uri(CRS84),
                    "storageCrs": crs_uri(crs),
                    "storageCrsBbox": [list(grid.bounds)],
                    "grid": [{"cellsCount": grid.shape[1], "resolution": grid.resolution},
                             {"cellsCount": grid.shape[0], "resolution": grid.resolution}],
                },
            },
        }
        if dates:
            properties["time_range"] = [dates[0], dates[-1]]
            properties["uad"]["temporal"] = {
                "interval": [[dates[0], dates[-1]]],
                "trs": TEMPORAL_RS,
                # the acquisition dates: any of them (a day) gives that date, an interval
                # a composite of the cloud-masked dates inside it
                "grid": {"cellsCount": len(dates), "coordinates": dates},
            }
        return properties

    # --- data ------------------------------------------------------------------------------

    def query(self, properties=None, subsets=None, bbox=None, bbox_crs=None, datetime_=None,
              format_="json", **kwargs):
        """The coverage as CoverageJSON (a dict) or a COG (bytes) for ``f=GTiff``."""
        with provider_errors():
            return self._query(list(properties or []), dict(subsets or {}), bbox or [],
                               bbox_crs, datetime_, format_)

    def _query(self, properties, subsets, bbox, bbox_crs, datetime_, format_):
        coll = self.collection
        limits = Limits.from_env()
        if format_ not in ("json", self.native_format):
            raise InvalidInput(f"f must be json (CoverageJSON) or {self.native_format}")
        # where
        native_bbox = _bbox_from_subsets(subsets)
        if native_bbox is not None and bbox:
            raise InvalidInput("bbox and subset on x/y are exclusive; use one")
        if native_bbox is not None:
            bbox, bbox_crs = native_bbox, coll.native_crs()
        part = request_area(bbox, bbox_crs, coll.area, name=coll.name)
        # when
        time_subset = _when_from_subsets(subsets)
        if time_subset is not None and datetime_:
            raise InvalidInput("datetime and subset on time are exclusive; use one")
        when = resolve_when(coll.catalog, part, parse_when(time_subset or datetime_),
                            max_cloud=coll.max_cloud, limits=limits)
        # what
        names = properties or list(self._fields)
        unknown = [n for n in names if n not in self._fields]
        if unknown:
            raise InvalidInput(f"unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                               f"{', '.join(unknown)}; available: {', '.join(self._fields)}")
        mask_band = coll.catalog.mask.band
        if not coll.index and coll.product is None and mask_band in names \
                and not when.single:
            if properties:
                raise InvalidInput(f"the {mask_band} band (cloud mask) is served for one date "
                                   "only; drop it from properties or ask for one day")
            names = [n for n in names if n != mask_band]
        bands = coll.read_bands(names)
        # grid
        scenes = scenes_for(coll.catalog, part, when.interval, name=coll.name)
        if bbox and part.crs.is_projected:
            out_crs = part.crs
        else:
            out_crs = parse_crs(Counter(s.epsg for s in scenes).most_common(1)[0][0])
        native = coll.grid == "native"
        if native:  # the data's own CRS, pixel size and pixel edges
            out_crs = native_grid(scenes, bands, part).crs
        if bbox:  # the bbox's envelope in whole output pixels
            try:
                part = request_area(bbox, bbox_crs, coll.area, name=coll.name, crs=out_crs,
                                    resolution=None if native else coll.resolution)
            except InvalidInput:  # a planet-wide bbox has no envelope in a UTM zone: use
                part = request_area(list(part.bounds), part.crs, coll.area,  # its part here
                                    name=coll.name, crs=out_crs,
                                    resolution=None if native else coll.resolution)
        grid = native_grid(scenes, bands, part) if native else \
            Grid.from_area(part, out_crs, coll.resolution)
        if format_ == "json":
            values = grid.npixels * len(names)
            if values > coll.max_coveragejson_values:
                raise TooLarge(
                    f"CoverageJSON is limited to {coll.max_coveragejson_values:,} values "
                    f"(pixels × bands) and this request has {values:,} "
                    f"({grid.shape[1]}×{grid.shape[0]} px × {len(names)}); use "
                    f"f={self.native_format} (Cloud Optimized GeoTIFF) or a smaller bbox"
                )
        # read (lazy until compute)
        mask = bool(coll.index) or not when.single
        data = read_imagery(coll.catalog, part, when.interval, bands, crs=out_crs,
                            resolution=coll.resolution, method=coll.composite, mask=mask,
                            clip=True, limits=limits, grid="native" if native else "default")
        if coll.product is not None:
            layers = {coll.product.name: compute(data[VALUE]).values}
        elif coll.index:
            layers = {coll.index: compute(compute_index(data, coll.index)).values}
        else:
            computed = compute(data[names])
            layers = {n: computed[n].values for n in names}
        info = {
            "dates": list(data.attrs.get("dates", [])),
            "scenes": list(data.attrs.get("scenes", [])),
            "composite": data.attrs.get("composite", "none"),
            "masked": bool(data.attrs.get("cloud_masked")),
            # scenes left out because a file is missing or corrupt: {id: reason}
            "skipped": dict(data.attrs.get("skipped") or {}),
        }
        transform = data.rio.transform()
        stamp = info["dates"][0] if len(info["dates"]) == 1 else \
            f"{info['dates'][0]}_{info['dates'][-1]}"
        if format_ == "json":
            return self._coveragejson(layers, transform, out_crs, info)
        what = coll.product.name if coll.product is not None else coll.index or "s2"
        self.filename = f"{what}-{stamp}.tif".lower()
        return self._geotiff(layers, transform, out_crs, info)

    def _geotiff(self, layers: dict[str, np.ndarray], transform, crs, info: dict) -> bytes:
        stack = np.stack([np.asarray(v, dtype="float32") for v in layers.values()])
        names = list(layers)
        index = self.collection.index
        product = self.collection.product
        tags = {
            "DATES": ",".join(info["dates"]),
            "SCENES": ",".join(info["scenes"]),
            "COMPOSITE": info["composite"],
            "CLOUD_MASKED": "yes" if info["masked"] else "no",
            "VALUES": (f"{product.title['en']} ({product.unit})" if product is not None else
                       f"{index} ({get_index(index).formula})" if index else
                       "reflectance (DN x scale + offset of each scene); mask bands: codes"),
            "NODATA": "NaN",
        }
        if info["skipped"]:
            tags["SKIPPED_SCENES"] = ",".join(info["skipped"])
        return to_cog(stack, transform=transform, crs=crs, nodata=np.nan, descriptions=names,
                      scales=[1.0] * len(names), offsets=[0.0] * len(names), tags=tags)

    def _coveragejson(self, layers: dict[str, np.ndarray], transform, crs, info) -> dict:
        height, width = next(iter(layers.values())).shape
        res_x, res_y = transform.a, transform.e
        x0, y0 = transform.c + res_x / 2, transform.f + res_y / 2
        axes = {
            "x": {"start": x0, "stop": x0 + res_x * (width - 1), "num": width},
            "y": {"start": y0, "stop": y0 + res_y * (height - 1), "num": height},
        }
        referencing = [{"coordinates": ["x", "y"], "system": {
            "type": "GeographicCRS" if crs.is_geographic else "ProjectedCRS",
            "id": crs_uri(crs)}}]
        if len(info["dates"]) == 1:
            axes["t"] = {"values": [f"{info['dates'][0]}T00:00:00Z"]}
            referencing.append({"coordinates": ["t"], "system": {
                "type": "TemporalRS", "calendar": "Gregorian"}})
        parameters, ranges = {}, {}
        for name, values in layers.items():
            field = self._fields[name]
            parameters[name] = {
                "type": "Parameter",
                "description": {"fr": field["title"], "en": field.get("description", name)},
                "observedProperty": {"id": name, "label": {"fr": field["title"], "en": name}},
            }
            if field["type"] == "number":
                parameters[name]["unit"] = {"symbol": "1"}
            array = np.asarray(values, dtype="float64")
            valid = np.isfinite(array)
            if field["type"] == "integer":
                flat = [int(v) if ok else None for v, ok in zip(array.ravel(), valid.ravel())]
                data_type = "integer"
            else:
                rounded = np.round(array, 6)
                flat = [float(v) if ok else None for v, ok in zip(rounded.ravel(), valid.ravel())]
                data_type = "float"
            ranges[name] = {"type": "NdArray", "dataType": data_type, "axisNames": ["y", "x"],
                            "shape": [height, width], "values": flat}
        coverage = {
            "type": "Coverage",
            "domain": {"type": "Domain", "domainType": "Grid", "axes": axes,
                       "referencing": referencing},
            "parameters": parameters,
            "ranges": ranges,
            "sentinelle:dates": info["dates"],
            "sentinelle:scenes": info["scenes"],
            "sentinelle:composite": info["composite"],
            "sentinelle:cloudMasked": info["masked"],
            "cloud_masked": info["masked"],
        }
        if info.get("skipped"):
            coverage["sentinelle:skippedScenes"] = info["skipped"]
        return coverage

    def __repr__(self):
        return f"<SentinelCoverageProvider> {self.collection.name}"

