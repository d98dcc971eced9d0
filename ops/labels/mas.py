"""The multi-annotated set of faces (AffectNet+ §3.1, Supplement II) from merged annotations.

Each face takes the hard label its annotators' merged vote gave it (the merge policy's winner, an
AffectNet-8 emotion); test-MAS holds, per emotion, up to ``per_class`` faces on which all annotators
agree (:func:`ops.labels.affectnet_plus.split_mas`), the rest is train-MAS. A near-duplicate family
never straddles the two (its members follow the first chosen one), and every face of one image
follows that image.
"""

from __future__ import annotations

import pandas as pd

from ops.labels.affectnet_plus import split_mas

SPLIT_TRAIN, SPLIT_TEST, SPLIT_EXCLUDED = "train", "test", "excluded"


def mas_split(faces: pd.DataFrame, merged: pd.DataFrame, groups: pd.DataFrame | None = None, *,
              taxonomy: str = "affectnet8", per_class: int = 100, seed: int = 0) -> pd.DataFrame:
    """One row per face: face_id, sha256, hard_label (the merged winner when it is an emotion of the
    taxonomy, else None), n_votes, all_agree, split ('train' | 'test' | 'excluded': pulled into
    test by a near-duplicate family without being a full-agreement candidate, so neither trained
    on nor scored), test_candidate, group_id.

    ``faces``: face_id, sha256; ``merged``: merged_annotations (image rows of ``taxonomy`` linked to
    an image by sha256); ``groups``: duplicate_groups (sha256, group_id)."""
    need = {"sha256", "taxonomy", "emotion", "emotion_all_agree", "emotion_n_votes"}
    if need <= set(merged.columns):   # a build without face-taxonomy annotations has none of these
        m = merged[(merged["taxonomy"] == taxonomy) & merged["sha256"].notna()]
    else:
        m = pd.DataFrame({c: pd.Series(dtype=object) for c in need | {"image_id"}})
    m = m.sort_values("image_id").drop_duplicates("sha256")
    per_image = pd.DataFrame({"sha256": m["sha256"].astype(str), "emotion": m["emotion"],
                              "emotion_all_agree": m["emotion_all_agree"].astype(bool),
                              "emotion_n_votes": m["emotion_n_votes"].astype("int64")})
    if groups is not None and len(groups):
        per_image = per_image.merge(groups[["sha256", "group_id"]].astype({"sha256": str}), on="sha256", how="left")
    else:
        per_image["group_id"] = None
    if per_image.empty:
        split = pd.DataFrame(columns=["sha256", "label", "split", "test_candidate", "pulled_by_group"])
    else:
        split = split_mas(per_image, per_class, seed, id_col="sha256", label_col="emotion",
                          agree_col="emotion_all_agree", votes_col="emotion_n_votes", groups="group_id"
                          ).rename(columns={"emotion": "label"})
    out = faces[["face_id", "sha256"]].astype({"sha256": str}).merge(
        per_image[["sha256", "emotion_n_votes", "emotion_all_agree", "group_id"]], on="sha256", how="left")
    out = out.merge(split[["sha256", "label", "split", "test_candidate"]] if len(split) else
                    pd.DataFrame(columns=["sha256", "label", "split", "test_candidate"]), on="sha256", how="left")
    out = out.rename(columns={"label": "hard_label", "emotion_n_votes": "n_votes", "emotion_all_agree": "all_agree"})
    cand = out["test_candidate"].fillna(False).astype(bool)
    out["split"] = pd.Series([SPLIT_TEST if s == "test" and c else SPLIT_EXCLUDED if s == "test" else
                              SPLIT_TRAIN if isinstance(h, str) else None
                              for s, c, h in zip(out["split"], cand, out["hard_label"])], index=out.index, dtype=object)
    out["test_candidate"] = cand
    out["hard_label"] = pd.Series([h if isinstance(h, str) else None for h in out["hard_label"]],
                                  index=out.index, dtype=object)
    return out[["face_id", "sha256", "hard_label", "n_votes", "all_agree", "split", "test_candidate", "group_id"]]
