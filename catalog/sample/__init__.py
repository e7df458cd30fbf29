"""Deterministic synthetic Sentinel-2 sample data: ``generate(out_dir)`` writes a static STAC
catalog of COGs over Brittany and French Guiana, vector layers and the truth behind them."""

from .generate import DEFAULT_SEED, generate

__all__ = ["DEFAULT_SEED", "generate"]
