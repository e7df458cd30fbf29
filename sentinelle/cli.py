"""``sentinelle`` command line: one entry point, one function per subcommand."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click


@click.group()
@click.version_option(package_name="sentinelle")
def main() -> None:
    """Sentinelle: Copernicus Sentinel-2 for France's regional SDIs."""


@main.command("sample-data")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=20240612, show_default=True,
              help="Random seed; the same seed gives byte-identical files.")
@click.option("--tile-size", type=click.IntRange(256, 10980), default=None,
              help="Write one full-size scene of this many 10 m pixels a side instead "
                   "(10980 = a real Sentinel-2 tile), for benchmarks.")
@click.option("--force", is_flag=True, help="Overwrite an existing sample in DIRECTORY.")
def sample_data(directory: Path, seed: int, tile_size: int | None, force: bool) -> None:
    """Generate the deterministic sample catalog, vectors and ground truth into DIRECTORY."""
    from sentinelle.catalog.sample import generate

    marker = directory / "catalog" / "catalog.json"
    if marker.exists() and not force:
        click.echo(f"{directory} already holds a sample catalog (use --force to rewrite it)")
        return
    start = time.perf_counter()
    summary = generate(directory, seed=seed, tile_size=tile_size, progress=sys.stderr.isatty())
    elapsed = time.perf_counter() - start
    click.echo(f"sample data written to {directory} in {elapsed:.1f} s")
    for key, value in summary.items():
        if not isinstance(value, (dict, list)):
            click.echo(f"  {key}: {value}")


@main.command()
@click.option("--host", default=lambda: os.environ.get("SENTINELLE_HOST", "127.0.0.1"),
              show_default="127.0.0.1 or SENTINELLE_HOST")
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "5000")),
              show_default="5000 or PORT")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="pygeoapi configuration (default: the repository's pygeoapi-config.yml).")
@click.option("--debug", is_flag=True, help="Flask debug mode (never in production).")
def serve(host: str, port: int, config: str | None, debug: bool) -> None:
    """Serve the OGC APIs with Flask's threaded server (use gunicorn in production)."""
    public_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    os.environ.setdefault("SENTINELLE_URL", f"http://{public_host}:{port}")
    os.environ["PORT"] = str(port)
    from sentinelle.web.app import create_app

    app = create_app(config)
    click.echo(f"Sentinelle on {os.environ['SENTINELLE_URL']}")
    app.run(host=host, port=port, threaded=True, debug=debug, use_reloader=False)


@main.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write the document (default build/openapi.yml).")
def openapi(config: str | None, output: str | None) -> None:
    """Generate the OpenAPI document from the pygeoapi configuration."""
    from sentinelle.web.app import configure_environment, ensure_openapi

    config_path, openapi_path = configure_environment(config, output)
    if openapi_path.exists():
        openapi_path.unlink()
    ensure_openapi(config_path, openapi_path)
    click.echo(f"OpenAPI document written to {openapi_path}")


@main.group()
def hub() -> None:
    """The Copernicus hub: mirror an upstream STAC API over areas of interest."""


@hub.command("sync")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def hub_sync(config: Path, progress: bool | None, as_json: bool) -> None:
    """Fetch what is new upstream into the hub folder CONFIG names (YAML, see deploy/hub.md).

    Exits with status 1 when an item (or the search) could not be fetched, after listing why.
    """
    import json
    import logging

    from sentinelle.catalog.hub import load_config, sync

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_config(config)
        report = sync(settings, progress=sys.stderr.isatty() if progress is None else progress)
    except ValueError as err:  # a bad configuration or area file (upstream errors are reported)
        raise click.UsageError(str(err)) from err
    click.echo(json.dumps(report.as_dict(), indent=1) if as_json else report.format())
    if not report.ok:
        click.echo(f"{len(report.failed)} item(s) could not be fetched; run the same command "
                   "again to resume (complete files are kept).", err=True)
        sys.exit(1)


@main.group()
def territory() -> None:
    """Add a territory to the configuration, or check one (see the README, "Deploy Sentinelle
    for your territory")."""


def _config_option(function):
    return click.option("--config", type=click.Path(exists=True, dir_okay=False,
                                                    path_type=Path), default=None,
                        help="The configuration (default: SENTINELLE_CONFIG, else the "
                             "repository's pygeoapi-config.yml).")(function)


def _source_config(config: Path | None) -> Path:
    from sentinelle.web.app import source_config

    return source_config(config)


@territory.command("add")
@click.argument("territory_id")
@click.option("--title", "title_fr", required=True, help="French title (shown first).")
@click.option("--title-en", default=None, help="English title (default: the French one).")
@click.option("--area", "area_file", type=click.Path(exists=True, dir_okay=False,
                                                     path_type=Path),
              help="The area from a file (GeoJSON, GeoPackage: e.g. the communes).")
@click.option("--area-collection", default=None,
              help="The area from a served feature collection (e.g. bretagne-communes).")
@click.option("--area-filter", default=None,
              help="CQL2 filter on the area's features (e.g. \"code LIKE '22%'\").")
@click.option("--bbox", default=None, help="The area as minx,miny,maxx,maxy (lon/lat).")
@click.option("--catalog", "catalog_source", required=True,
              help="A folder (static STAC catalog, Theia products) or a STAC API URL.")
@click.option("--preset", default="auto", show_default=True,
              help="Provider preset (earth-search, cdse, theia, earth-search-l1c, …).")
@click.option("--collection", "collections", multiple=True,
              help="STAC collection id(s) to read (default: the preset's).")
@click.option("--mask", default=None,
              help="Cloud mask: scl, theia-clm, cloud-probability, none (default: the "
                   "preset's).")
@click.option("--asset", "assets", multiple=True,
              help="BAND=ASSET_KEY for a provider whose asset names differ (repeatable).")
@click.option("--crs", "crs_list", multiple=True,
              help="National CRS its users work in (repeatable, e.g. EPSG:2154).")
@click.option("--layer", "layers", multiple=True,
              help="ROLE=PATH[:LAYER][@EPSG:XXXX], e.g. communes=communes.gpkg (repeatable).")
@click.option("--print", "only_print", is_flag=True,
              help="Print the block instead of writing it.")
@_config_option
def territory_add(territory_id: str, title_fr: str, title_en: str | None,
                  area_file: Path | None, area_collection: str | None,
                  area_filter: str | None, bbox: str | None, catalog_source: str,
                  preset: str, collections: tuple[str, ...], mask: str | None,
                  assets: tuple[str, ...], crs_list: tuple[str, ...],
                  layers: tuple[str, ...], only_print: bool, config: Path | None) -> None:
    """Write a territory block for TERRITORY_ID into the configuration (then run `sentinelle
    territory check TERRITORY_ID`)."""
    import yaml

    from sentinelle.territories.commands import add_to_config, block, layer_spec
    from sentinelle.territories.model import TerritoryError

    given = [x for x in (area_file, area_collection, bbox) if x]
    if len(given) != 1:
        raise click.UsageError("give the area with exactly one of --area, --area-collection "
                               "or --bbox")
    if area_file:
        area: dict = {"file": str(area_file.resolve())}
    elif area_collection:
        area = {"collection": area_collection}
    else:
        area = {"bbox": [float(v) for v in bbox.split(",")]}
    if area_filter:
        area["filter"] = area_filter
    try:
        mapping = dict(item.split("=", 1) for item in assets)
        specs = [layer_spec(text) for text in layers]
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    if not area_file and not area_collection and not bbox:
        raise click.UsageError("give the area")
    catalog_text = catalog_source if "://" in catalog_source else \
        str(Path(catalog_source).resolve())
    content = block(title_fr=title_fr, title_en=title_en, area=area, catalog=catalog_text,
                    preset=preset, mask=mask, collections=list(collections),
                    crs=list(crs_list), layers=specs, assets=mapping or None)
    if only_print:
        click.echo(yaml.safe_dump({territory_id: content}, sort_keys=False,
                                  allow_unicode=True))
        return
    target = _source_config(config)
    try:
        add_to_config(target, territory_id, content)
    except TerritoryError as err:
        raise click.UsageError(str(err)) from err
    click.echo(f"territory {territory_id} written to {target}; check it with `sentinelle "
               f"territory check {territory_id}`, then restart the server")


@territory.command("check")
@click.argument("territory_id")
@_config_option
def territory_check(territory_id: str, config: Path | None) -> None:
    """Say whether TERRITORY_ID's sources answer, which assets map to which bands, how many
    scenes and dates cover its area, whether its layers open, and what is missing.  Exits
    with status 1 when something must be fixed."""
    from pygeoapi.util import yaml_load

    from sentinelle.settings import data_dir
    from sentinelle.territories.commands import check
    from sentinelle.territories.registry import Registry

    os.environ.setdefault("SENTINELLE_DATA", str(data_dir()))
    os.environ.setdefault("SENTINELLE_CATALOG", str(data_dir() / "catalog"))
    path = _source_config(config)
    with path.open(encoding="utf-8") as handle:
        loaded = yaml_load(handle)
    from sentinelle.territories.model import TerritoryError, parse_territories

    try:
        registry = Registry(loaded, parse_territories(loaded))
    except TerritoryError as err:
        registry = Registry(loaded, ())
        click.echo(f"note: the configuration has an error: {err}", err=True)
    report = check(registry, territory_id)
    click.echo(report.format())
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
