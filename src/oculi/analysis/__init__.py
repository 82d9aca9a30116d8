"""The analysis layer shared by the data audit, visual search and monitoring: image statistics
(:mod:`~oculi.analysis.stats`), embeddings from a bundle's own backbone (:mod:`~oculi.analysis.embeddings`), a
nearest-neighbour index (:mod:`~oculi.analysis.index`), all cached per file fingerprint
(:mod:`~oculi.analysis.cache`); on top of them the audit (:mod:`~oculi.analysis.audit`,
:mod:`~oculi.analysis.labels`) and search / tagging (:mod:`~oculi.analysis.search`). Importing this package
loads nothing heavy; import the submodules."""
