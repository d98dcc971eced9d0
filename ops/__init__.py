"""emoforge's computations, in plain Python (no Dagster), one package per domain.

    acquisition/  keyword queries, search providers and URL lists, candidate filtering, the guarded
                  downloader (address guard, politeness, limits, journal), per-candidate statuses,
                  scrape-batch planning                                   (FindingEmo §2.3.1)
    dedup/        perceptual hashes, the persistent near-duplicate index, groups and
                  representatives                                          (StockEmotion §3.1)
    annotations/  annotation exports in (readers, one column-wise parsing engine), taxonomies,
                  annotator grading, statistics views and plots, the annotation queue,
                  linking annotations to acquired images          (FindingEmo §2.1–2.3, §A.5)
    labels/       label aggregation: one interface for every policy (majority, plurality,
                  crowd-kit models), and the per-image merge      (AffectNet+ Supplement II)
    config/       the YAML configuration schema, one module per domain, and its loader
    demo/         the embedded demo: generated corpus, its local web server, the demo config
    quality.py    great-expectations suites used by the blocking asset checks
    data/         package data (keyword sets, taxonomies)

Every package takes plain parameters (numbers, strings, paths, dataclasses of its own), never the
pydantic configuration objects: ``ops.config`` converts the configuration into those.
"""
