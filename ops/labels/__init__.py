"""Labels from votes: aggregation policies behind one interface, and the per-image merge.

    aggregators.py  ``fit(votes) -> self`` aggregators (majority, plurality, crowd-kit models), a
                    registry of them by name (the configuration's list of policies comes from it)
    merge.py        ``merged_annotations``: keep majority, vote distributions, the aggregated label,
                    agreement, valence/arousal spread, age-group shares (FindingEmo §A.5)
"""
