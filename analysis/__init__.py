"""Pure computations on xarray/numpy: spectral indices, statistics, change, classes.

Nothing here reads files or knows about STAC or HTTP; functions are lazy (no ``.compute()``)
and keep the CRS of their input.
"""
