"""Cloud masks as a property of the source, not an assumption.

Sentinel-2 L2A from Earth Search, CDSE or Planetary Computer carries the ESA scene
classification (SCL); Theia/MAJA products a cloud bit field (CLM) and a geophysical one (MG2);
some providers a cloud probability band; Level-1C and most products none.  A :class:`Mask`
says which band to read (``band``, a mask band of the vocabulary, or None), which pixels it
hides (:meth:`Mask.hidden`: not usable as ground), which of those the weather hides
(:meth:`Mask.cloudy`: the numerator of a cloud fraction) and, when it can, which pixels have
data at all (:meth:`Mask.observed`; masks that cannot say, like a bit field whose 0 means both
"clear" and "outside the swath", set ``knows_nodata = False`` and the search reads a
reflectance band to find the pixels with data).

``NoMask`` masks nothing; cloud fractions are then unknown (``None``), ``max_cloud`` cannot
filter, and results say ``cloud_masked: false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from sentinelle.catalog.scl import CLOUD_CLASSES, DEFAULT_MASK_CLASSES, SCL, parse_classes

#: MAJA CLM bits (https://labo.obs-mip.fr/multitemp/sentinel-2/majas-native-sentinel-2-format/):
#: 0 all clouds except thin ones, 1 all clouds (incl. thin), 2 cloud shadows (clouds in the
#: image), 3 shadows of clouds outside the image, 4 tall clouds, 5 high clouds (cirrus),
#: 6 thin clouds, 7 clouds found by the multi-temporal test
CLM_ALL_BITS = 0b11111111
#: MAJA MG2 bits: 0 water, 1 all clouds, 2 snow, 3 cloud shadows, 4 topographic shadows,
#: 5 hidden by topography, 6 sun too low, 7 tangent sun
MG2_HIDDEN_BITS = 0b11111110  # everything but water
MG2_CLOUD_BITS = 0b00001010  # clouds, cloud shadows
MASK_TYPES = ("scl", "theia-clm", "theia-mg2", "cloud-probability", "none")


@dataclass(frozen=True)
class Mask:
    """How a source says which pixels hide the ground (see the module docstring)."""

    type: str = "none"
    band: str | None = None

    #: whether :meth:`observed` can tell pixels without data (else the search probes a band)
    knows_nodata: bool = False

    @property
    def masks(self) -> bool:
        """False for :class:`NoMask`: nothing is masked, cloud fractions are unknown."""
        return self.band is not None

    def hidden(self, values: Any) -> Any:
        """True where the pixel is not usable ground (lazy on xarray, numpy on arrays)."""
        raise NotImplementedError

    def cloudy(self, values: np.ndarray) -> np.ndarray:
        """True where the weather hides the ground (a cloud fraction's numerator)."""
        raise NotImplementedError

    def observed(self, values: np.ndarray) -> np.ndarray:
        """True where there is data (only meaningful when ``knows_nodata``)."""
        return np.ones(np.shape(values), dtype=bool)

    def describe(self) -> str:
        return self.type


@dataclass(frozen=True)
class SclMask(Mask):
    """ESA scene classes: ``classes`` are masked; shadows, clouds and cirrus are cloud."""

    type: str = "scl"
    band: str | None = "scl"
    knows_nodata: bool = True
    classes: tuple[int, ...] = DEFAULT_MASK_CLASSES
    cloud_classes: tuple[int, ...] = CLOUD_CLASSES

    def hidden(self, values):
        return _isin(values, self.classes)

    def cloudy(self, values):
        return np.isin(values, self.cloud_classes)

    def observed(self, values):
        return np.asarray(values) != SCL.NO_DATA

    def describe(self) -> str:
        return f"SCL classes {', '.join(map(str, self.classes))} masked"


@dataclass(frozen=True)
class BitMask(Mask):
    """A bit field (Theia/MAJA CLM or MG2): pixels with any of ``bits`` set are masked, any
    of ``cloud_bits`` set are cloud.  0 also means "outside the swath": no nodata of its own."""

    type: str = "theia-clm"
    band: str | None = "clm"
    bits: int = CLM_ALL_BITS
    cloud_bits: int = CLM_ALL_BITS

    def hidden(self, values):
        return (values & self.bits) != 0

    def cloudy(self, values):
        return (np.asarray(values).astype("int64") & self.cloud_bits) != 0

    def describe(self) -> str:
        return f"{self.band.upper()} bits {self.bits:#010b} masked"


@dataclass(frozen=True)
class ProbabilityMask(Mask):
    """A cloud probability band (0–100): pixels at or above ``threshold`` are cloud and
    masked; ``nodata`` (e.g. 255) marks pixels without data when the band has one."""

    type: str = "cloud-probability"
    band: str | None = "cloud"
    threshold: float = 50.0
    nodata: float | None = None

    def __post_init__(self):  # a probability band tells "no data" only with a nodata value
        object.__setattr__(self, "knows_nodata", self.nodata is not None)

    def hidden(self, values):
        hidden = values >= self.threshold
        return hidden | (values == self.nodata) if self.nodata is not None else hidden

    def cloudy(self, values):
        return np.asarray(values) >= self.threshold

    def observed(self, values):
        if self.nodata is None:
            return super().observed(values)
        return np.asarray(values) != self.nodata

    def describe(self) -> str:
        return f"cloud probability ≥ {self.threshold:g} masked"


@dataclass(frozen=True)
class NoMask(Mask):
    """No cloud mask: nothing is hidden, cloud fractions are unknown."""

    type: str = "none"
    band: str | None = None

    def hidden(self, values):
        return values != values if hasattr(values, "dims") else np.zeros(np.shape(values), bool)

    def cloudy(self, values):
        return np.zeros(np.shape(values), dtype=bool)

    def describe(self) -> str:
        return "no cloud mask"


def _isin(values, classes: Iterable[int]):
    classes = list(classes)
    return values.isin(classes) if hasattr(values, "isin") else np.isin(values, classes)


def parse_mask(spec: Any, default: str = "scl") -> Mask:
    """A :class:`Mask` from a source's ``mask:`` configuration: a type name (``scl``,
    ``theia-clm``, ``theia-mg2``, ``cloud-probability``, ``none``) or a mapping with ``type``
    and its options (``classes`` for SCL; ``bits`` for Theia; ``threshold``, ``nodata`` for
    a probability).  ``None`` gives the preset's ``default``.  ``ValueError`` says what is
    wrong."""
    if spec is None:
        spec = default
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"mask: give a type ({', '.join(MASK_TYPES)}) or a mapping with 'type'")
    kind = str(spec["type"]).strip().lower()
    options = {k: v for k, v in spec.items() if k != "type"}

    def check(allowed: set[str]) -> None:
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f"mask ({kind}): unknown option(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(allowed)) or 'none'}")

    if kind == "scl":
        check({"classes", "cloud_classes"})
        classes = parse_classes(options.get("classes", DEFAULT_MASK_CLASSES))
        clouds = parse_classes(options.get("cloud_classes", CLOUD_CLASSES))
        return SclMask(classes=classes, cloud_classes=clouds)
    if kind in ("theia-clm", "theia-mg2"):
        check({"bits"})
        mg2 = kind == "theia-mg2"
        bits = _bits(options.get("bits", MG2_HIDDEN_BITS if mg2 else CLM_ALL_BITS))
        return BitMask(type=kind, band="mg2" if mg2 else "clm", bits=bits,
                       cloud_bits=MG2_CLOUD_BITS if mg2 else bits)
    if kind == "cloud-probability":
        check({"threshold", "nodata"})
        try:
            threshold = float(options.get("threshold", 50))
            nodata = None if options.get("nodata") is None else float(options["nodata"])
        except (TypeError, ValueError):
            raise ValueError("mask (cloud-probability): threshold and nodata are numbers") \
                from None
        if not 0 < threshold <= 100:
            raise ValueError("mask (cloud-probability): threshold is a percentage in ]0, 100]")
        return ProbabilityMask(threshold=threshold, nodata=nodata)
    if kind == "none":
        check(set())
        return NoMask()
    raise ValueError(f"mask: unknown type {kind!r}; known: {', '.join(MASK_TYPES)}")


def _bits(value: Any) -> int:
    """Bits from an int, a binary/hex string, or a list of bit numbers."""
    try:
        if isinstance(value, (list, tuple)):
            bits = sum(1 << int(b) for b in value)
        elif isinstance(value, str):
            bits = int(value, 0)
        else:
            bits = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"mask bits: {value!r} is not a bit field (an integer, '0b1011', or "
                         "a list of bit numbers)") from None
    if not 0 < bits < 256:
        raise ValueError("mask bits: an 8-bit field with at least one bit set")
    return bits
