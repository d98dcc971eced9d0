"""Training and evaluation pieces for the baseline models (plain Python; no Dagster import).

    tasks.py      FindingEmo §3 classification tasks (Emo8 in Plutchik wheel order, Arousal3,
                  Valence3), their class-distance matrices (§A.7), and Deep Affect §2.1's rescaling
                  of valence/arousal to 1–9
    schedules.py  FindingEmo Eq. 2 learning-rate rule (function and torch scheduler adapter),
                  FindingEmo §3 early stopping (best loss / best weighted F1 6 epochs behind, 250
                  epochs at most), Deep Affect §2.3 plateau schedule (SGD, lr × 0.1 after 4 flat
                  epochs, floor 6e-6, stop after 6)
    metrics.py    accuracy, F1, weighted F1, average precision (FindingEmo §3), AffectNet+ average
                  accuracy (Eq. 3), W-MAE (Eq. 15) and W-FR (§4.3), MSE/MAE/RMSE/CCC (CAGE §4.3,
                  Deep Affect §3), and the long-format metrics table (split, metric, class, value)

The torch losses and heads live in ``models/losses.py`` and ``models/regressors.py``.
"""
