"""OGC API Maps over a territory's imagery: PNG maps and legends of an imagery collection.

A thin pygeoapi ``map`` provider around :func:`sentinelle.rendering.render_map` (which the WMS
reuses): true colour for the bands collections, the index's colour ramp for index collections,
the product's ramp stretched to its declared range for product collections; transparent where
there is no data, cloud (the source's mask) or outside the territory's area; exactly the
requested ``width`` × ``height``.  A bbox entirely outside the territory is a 404 naming the
territory's extent.  Same ``datetime`` convention as the coverages (a day, an interval for a
cloud-masked composite, nothing for the latest clear date).

How pygeoapi 0.21 hands the bbox over (``api/maps.py``): it transforms ``bbox`` from
``bbox-crs`` (default ``EPSG:4326``, read as lon/lat) into the provider's configured ``crs``
(default ``EPSG:4326``) with pyproj in *authority* axis order, and passes both.  The provider
undoes that transformation to get the client's bbox back and draws the map **in the CRS of
the bbox**: CRS84 (lon/lat) by default, EPSG:3857 for web maps, EPSG:2154, …  ``bbox-crs`` must
be a CRS URI (``http://www.opengis.net/def/crs/EPSG/0/3857``); pygeoapi 0.21 fails on
``EPSG:3857``.  There is no ``crs`` parameter in 0.21's map API.

Legends: pygeoapi 0.21 has ``api.maps.get_collection_map_legend`` (calling ``get_legend``) but
no route for it; :meth:`SentinelMapProvider.get_legend` is ready for one.
"""

from __future__ import annotations

from pygeoapi.provider.base import BaseProvider, ProviderItemNotFoundError
from pyproj import Transformer

from sentinelle.analysis.render import Ramp, rescaled
from sentinelle.catalog.area import CRS84, parse_crs
from sentinelle.encode import to_png
from sentinelle.errors import InvalidInput
from sentinelle.providers.coverage import ImageryCollection
from sentinelle.providers.errors import provider_errors
from sentinelle.rendering import legend_png, parse_when, render_map
from sentinelle.settings import Limits

#: pygeoapi 0.21's default for both the provider ``crs`` and ``bbox-crs`` (api/maps.py)
PYGEOAPI_DEFAULT_CRS = "http://www.opengis.net/def/crs/EPSG/0/4326"
STYLES = {"true-color": "natural colours (red, green, blue)"}


def client_bbox(bbox, crs: str | None, bbox_crs: str | None) -> tuple[list[float], object]:
    """The bbox as the client gave it, and the CRS to draw in, from what pygeoapi passes.

    pygeoapi transforms only when the two CRS strings differ; EPSG:4326 as pygeoapi's default
    means lon/lat (its default bbox is the CRS84 extent), so it is drawn as CRS84.
    """
    crs = crs or PYGEOAPI_DEFAULT_CRS
    try:
        coords = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise InvalidInput("bbox values must be numbers") from None
    if len(coords) != 4:
        raise InvalidInput("bbox values should be minx,miny,maxx,maxy")
    if bbox_crs is None or bbox_crs == crs:
        target = parse_crs(crs)
        return coords, (CRS84 if target == parse_crs(4326) else target)
    try:
        source, target = parse_crs(crs), parse_crs(bbox_crs)
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    inverse = Transformer.from_crs(source, target)  # authority order, like pygeoapi
    x1, y1 = inverse.transform(coords[0], coords[1])
    x2, y2 = inverse.transform(coords[2], coords[3])
    return [x1, y1, x2, y2], (CRS84 if target == parse_crs(4326) else target)


def product_ramp(collection: ImageryCollection) -> Ramp | None:
    """The colour ramp of a product collection (its ramp over its declared range)."""
    product = collection.product
    return None if product is None else rescaled(product.ramp, *product.range)


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


class SentinelMapProvider(BaseProvider):
    """pygeoapi map provider for one imagery collection (options as the coverage provider)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        with provider_errors():
            self.collection = ImageryCollection(self.data, self.options)
        self.crs = provider_def.get("crs", PYGEOAPI_DEFAULT_CRS)

    def query(self, style=None, bbox=None, width=500, height=300, crs=None, datetime_=None,
              format_="png", transparent=True, bbox_crs=None, **kwargs) -> bytes:
        """PNG bytes of the map."""
        with provider_errors():
            if format_ not in (None, "png", "html"):
                raise InvalidInput(f"maps are served as png, not {format_!r}")
            self._check_style(style)
            coords, draw_crs = client_bbox(bbox, crs, bbox_crs)
            coll = self.collection
            rendered = render_map(
                coll.catalog, coll.area, coords, draw_crs, (int(width), int(height)),
                index=coll.index, when=parse_when(datetime_), method=coll.composite,
                max_cloud=coll.max_cloud, transparent=_flag(transparent),
                limits=Limits.from_env(), name=coll.name, values=product_ramp(coll))
            return to_png(rendered.rgba)

    def get_legend(self, style=None, format_="png") -> bytes:
        """PNG legend: the index's (or the product's) colour bar with its values."""
        with provider_errors():
            self._check_style(style)
            if format_ not in (None, "png"):
                raise InvalidInput(f"legends are served as png, not {format_!r}")
        product = self.collection.product
        if product is not None:
            with provider_errors():
                return legend_png(ramp=product_ramp(self.collection),
                                  title=f"{product.title['en']} ({product.unit})")
        if not self.collection.index:
            raise ProviderItemNotFoundError(
                user_msg="a true-colour map has no legend (red, green and blue reflectance "
                         "stretched to 0–0.25)")
        with provider_errors():
            return legend_png(self.collection.index)

    def _check_style(self, style) -> None:
        if style in (None, "", "default"):
            return
        coll = self.collection
        known = [coll.product.ramp] if coll.product is not None else \
            [coll.index.lower()] if coll.index else list(STYLES)
        if str(style).lower() not in known:
            raise InvalidInput(f"unknown style {style!r}; available: default, {', '.join(known)}")

    def __repr__(self):
        return f"<SentinelMapProvider> {self.collection.name}"
