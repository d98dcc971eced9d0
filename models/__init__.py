"""models/: torch modules and their factory. Plain torch: no Dagster import, no file I/O except
reading weight files (callers in ops/ and warehouse/ decide where files live).

Files:
- backbones.py   the registry: `create_backbone(name, weights=…)` → `Backbone` (feature module with its
                 classifier removed, feature_dim, layer, preprocessing, weights fingerprint),
                 `extractor_key(...)` for the feature cache, `list_backbones()`;
- preprocess.py  `Preprocess`, the frozen recipe PIL image → tensor (center crop, FindingEmo's
                 800×600 letterbox, Places365's stretch);
- weights.py     local weight files only: torch hub / HF hub cache lookup, state-dict reading,
                 `WeightsNotFoundError` naming the paths looked for, sha256 fingerprints;
- device.py      `pick_device()` and the CPU/GPU fast-path defaults (channels_last, autocast);
- small_cnn.py   `TinyCNN` (~100k parameters, 64–112 px), trained from scratch for the demo and tests;
- heads.py       linear and MLP heads on cached features, `make_head(kind, in_dim, n_out, ...)`;
- regressors.py, au_classifier.py, losses.py: task heads and training losses of the seed papers.
Later: the EBC (AffectNet+ §3.2 ensemble of binary classifiers) built from these parts.
"""
