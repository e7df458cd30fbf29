"""pygeoapi processors: metadata as data, a thin ``execute``, shared input parsing
(:mod:`.inputs`), one error table (:mod:`.errors`) and the job manager (:mod:`.manager`)."""
