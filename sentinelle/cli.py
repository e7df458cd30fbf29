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


if __name__ == "__main__":  # pragma: no cover
    main()
