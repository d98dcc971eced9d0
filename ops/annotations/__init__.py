"""Annotations (FindingEmo §2.1, §2.3.2, §2.3.3, §A.5; AffectNet+ Supplement II).

    schema.py      the CONTRACT ``annotations`` columns, vocabularies, reject reasons, Arrow schema
    parsing.py     the column-wise parsing engine every reader uses, and file access (CSV/Parquet)
    readers.py     the source formats: FindingEmo .ann, long (item x annotator), vote counts
    sources.py     several sources into one table; gold references
    linking.py     annotations linked to acquired images (URL-list item ids, normalized URLs)
    taxonomy.py    Plutchik's wheel (Emo24 -> Emo8, wheel distances), AffectNet-8, as data
    grading.py     annotator scores s and s_alt on the fixed overlap images
    statistics.py  statistics as DuckDB views (and pandas equivalents), adapted to the taxonomies
    plots.py       the figures of those statistics (PNG)
    queue.py       the next images to annotate (Emo8-balanced serving, overlap images)
"""
