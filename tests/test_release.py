"""Releases (ops.release): the frozen, versioned folder, its manifest and verification, determinism,
immutability and changes between versions, the datasheet, the Hugging Face and WebDataset exports,
and the CLI commands `release` and `verify-release`.

Every expected value is computed here from the fixture's own data (pandas, hashlib), never by the
code under test.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import stat
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

import ops.release
from ops.release import FORMATS, make_release
from ops.release.exports import LICENSE_NOTE
from ops.release.freeze import verify
from pipelines.cli import main
from warehouse.store import Warehouse

# integration tests (trained models, face detectors, demo worlds or exports): `make test`, not `make test-fast`
pytestmark = pytest.mark.slow

EMO8 = ["Joy", "Trust", "Fear", "Surprise", "Sadness", "Disgust", "Anger", "Anticipation"]
AFFECTNET8 = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
SOFT = [c.lower() for c in AFFECTNET8]
TABLES = ["dataset_splits", "duplicate_groups", "faces", "kept_images", "merged_annotations", "soft_labels",
          "unique_images"]
CONFIG_YAML = "data_dir: ./data\nrelease_test: true\n"
FINGERPRINT = "fp0123456789"
CODE = "c0de5eed00000000"

N_IMAGES = 12
N_FACES = 6
# emotion8 of the annotated images 0..9 (images 10 and 11 have no merged annotation)
E8 = ["Joy", "Joy", "Joy", "Trust", "Trust", "Fear", "Fear", "Surprise", "Sadness", "Anticipation"]
IMG_SPLIT = ["train"] * 8 + ["test"] * 2          # findingemo_80_20 rows of images 0..9; 10, 11 unsplit
FACE_SPLIT = ["train", "train", "validation", "train", "validation", "train"]   # faces of images 0..5
DIFFICULTY = ["Easy", "Easy", "Challenging", "Difficult", "Easy", "Challenging"]
FACE_PEAK = [1, 0, 2, 1, 6, 3]                     # index into AFFECTNET8 of each face's hard label


# ---- the fixture warehouse ------------------------------------------------------------------------

def _image_bytes(i: int, fmt: str | None = None, size: tuple[int, int] | None = None) -> bytes:
    fmt = fmt or ("PNG" if i % 2 == 0 else "JPEG")
    size = size or (32 + 4 * (i % 5), 24 + 2 * (i % 7))
    img = Image.new("RGB", size, ((37 * i + 11) % 256, (91 * i + 50) % 256, (173 * i + 120) % 256))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _image_row(i: int, data: bytes) -> dict:
    with Image.open(io.BytesIO(data)) as im:
        w, h, f = im.width, im.height, im.format.lower()
    host = "a.example.com" if i % 12 < 7 else "b.example.org"
    return {"sha256": _sha(data), "url": f"https://{host}/img/{i}.{f}",
            "final_url": f"https://{host}/final/{i}.{f}" if i % 3 == 0 else None,
            "query": f"query {i % 4}", "width": w, "height": h, "image_format": f,
            "first_seen": pd.Timestamp("2024-03-01 12:00:00") + pd.Timedelta(hours=i)}


def base_data() -> dict:
    """{'blobs': {sha: bytes}, 'tables': {name: DataFrame}} of the base fixture."""
    imgs = [_image_bytes(i) for i in range(N_IMAGES)]
    dup = _image_bytes(0, fmt="JPEG", size=(33, 25))   # a near duplicate of image 0 (not representative)
    shas = [_sha(b) for b in imgs]
    blobs = {_sha(b): b for b in imgs + [dup]}
    unique = pd.DataFrame([_image_row(i, b) for i, b in enumerate(imgs)])
    dups = pd.DataFrame({"sha256": shas + [_sha(dup)], "group_id": shas + [shas[0]],
                         "is_representative": [True] * N_IMAGES + [False]})
    dups["group_size"] = dups.groupby("group_id")["sha256"].transform("size")
    merged = pd.DataFrame({
        "image_id": [f"img{i:02d}" for i in range(len(E8))], "taxonomy": "plutchik24",
        "sha256": shas[:len(E8)], "emotion8": E8,
        "valence_mean": [round(-1 + 0.2 * i, 2) for i in range(len(E8))],
        "arousal_mean": [round(0.1 * i, 2) for i in range(len(E8))],
        "keep_majority": [i % 4 != 3 for i in range(len(E8))]})
    kept = pd.DataFrame({"sha256": shas, "p_keep": [round(0.05 + 0.08 * i, 2) for i in range(N_IMAGES)],
                         "kept": [i % 5 != 4 for i in range(N_IMAGES)]})
    kept["status"] = np.where(kept["kept"], "kept", "rejected")
    crops = [_image_bytes(100 + i, fmt="PNG", size=(16, 16)) for i in range(N_FACES)]
    blobs.update({_sha(c): c for c in crops})
    faces = pd.DataFrame({"face_id": [f"{shas[i]}:0" for i in range(N_FACES)], "sha256": shas[:N_FACES],
                          "crop_sha256": [_sha(c) for c in crops], "x": [2 + i for i in range(N_FACES)],
                          "y": [3 + i for i in range(N_FACES)], "w": [16] * N_FACES, "h": [16] * N_FACES,
                          "mode": "detect"})
    soft_rows = []
    for i in range(N_FACES):
        p = [0.05] * 8
        p[FACE_PEAK[i]] = 0.65
        soft_rows.append({"face_id": faces["face_id"][i], **dict(zip(SOFT, p)),
                          "hard_label": AFFECTNET8[FACE_PEAK[i]], "difficulty": DIFFICULTY[i],
                          "sha256": faces["sha256"][i], "crop_sha256": faces["crop_sha256"][i],
                          "mode": "detect", "split": FACE_SPLIT[i]})
    soft = pd.DataFrame(soft_rows)
    img_splits = pd.DataFrame({"scheme": "findingemo_80_20", "item_id": shas[:len(E8)],   # as ops.training.splits
                               "item_kind": "image", "split": IMG_SPLIT, "sha256": shas[:len(E8)],
                               "group_id": shas[:len(E8)], "label": E8, "seed": 0, "source_split": None})
    face_splits = pd.DataFrame({"scheme": "source", "item_id": faces["face_id"], "item_kind": "face",
                                "split": FACE_SPLIT, "sha256": faces["sha256"], "group_id": faces["sha256"],
                                "label": soft["hard_label"], "seed": 0, "source_split": FACE_SPLIT})
    splits = pd.concat([img_splits, face_splits], ignore_index=True)
    return {"blobs": blobs, "tables": {"unique_images": unique, "duplicate_groups": dups,
                                       "merged_annotations": merged, "kept_images": kept, "faces": faces,
                                       "soft_labels": soft, "dataset_splits": splits}}


def changed_data(data: dict) -> dict:
    """Image 0 relabelled (Joy -> Anger) and one new image (12) added."""
    d = copy.deepcopy(data)
    t = d["tables"]
    m = t["merged_annotations"]
    m.loc[m["image_id"] == "img00", "emotion8"] = "Anger"
    new = _image_bytes(12, fmt="PNG", size=(40, 30))
    d["blobs"][_sha(new)] = new
    t["unique_images"] = pd.concat([t["unique_images"], pd.DataFrame([_image_row(12, new)])], ignore_index=True)
    t["duplicate_groups"] = pd.concat([t["duplicate_groups"], pd.DataFrame(
        {"sha256": [_sha(new)], "group_id": [_sha(new)], "is_representative": [True], "group_size": [1]})],
        ignore_index=True)
    t["kept_images"] = pd.concat([t["kept_images"], pd.DataFrame(
        {"sha256": [_sha(new)], "p_keep": [0.9], "kept": [True], "status": ["kept"]})], ignore_index=True)
    return d


def removed_data(data: dict, index: int = 11) -> dict:
    """Image ``index`` (no face, no annotation, no split) removed everywhere."""
    d = copy.deepcopy(data)
    t = d["tables"]
    sha = t["unique_images"]["sha256"][index]
    for n in ("unique_images", "duplicate_groups", "kept_images"):
        t[n] = t[n][t[n]["sha256"] != sha].reset_index(drop=True)
    return d


def populate(root: Path, data: dict) -> Warehouse:
    wh = Warehouse(root).ensure()
    for b in data["blobs"].values():
        assert wh.blobs.put(b) == _sha(b)
    for n, df in data["tables"].items():
        wh.write_table(n, df, refresh=False)
    wh.refresh_catalog()
    return wh


def release(wh, version="1.0.0", name="emo", **kw):
    return make_release(wh, name=name, version=version, config_yaml=CONFIG_YAML, config_fingerprint=FINGERPRINT,
                        **kw)


def _file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _snapshot(path: Path) -> dict:
    """Every file under ``path`` (hidden ones too): relative path -> (sha256, mode, mtime_ns)."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(path))] = (_file_sha(p), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


@pytest.fixture(autouse=True)
def pinned_code_version(monkeypatch):
    """code_version() hashes the repository's source, which other people edit while these tests run:
    pin it so that two releases made a moment apart by one test see the same code."""
    monkeypatch.setattr(ops.release, "code_version", lambda: CODE)


@pytest.fixture
def data():
    return base_data()


@pytest.fixture
def wh(tmp_path, data):
    return populate(tmp_path / "data", data)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One release of the base data with both exports (made once: the exports are the slow part)."""
    d = base_data()
    w = populate(tmp_path_factory.mktemp("exported") / "data", d)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ops.release, "code_version", lambda: CODE)
        out = release(w, formats=FORMATS)
    return d, w, out


# ---- 1. the release folder ------------------------------------------------------------------------

def test_release_layout_manifest_and_verify(wh, data):
    out = release(wh)
    path = wh.root / "releases" / "emo" / "1.0.0"
    assert Path(out["path"]) == path and out["reused"] is False
    assert wh.releases("emo") == ["1.0.0"]
    t = data["tables"]

    # tables: one Parquet file per table, with the fixture's rows
    assert sorted(p.name for p in (path / "tables").iterdir()) == sorted(f"{n}.parquet" for n in TABLES)
    for n, df in t.items():
        got = pq.read_table(path / "tables" / f"{n}.parquet").to_pandas()
        assert len(got) == len(df), n
        assert list(got.columns) == list(df.columns), n
    got = pq.read_table(path / "tables" / "merged_annotations.parquet").to_pandas()
    assert dict(zip(got["image_id"], got["emotion8"])) == dict(zip(t["merged_annotations"]["image_id"], E8))
    got = pq.read_table(path / "tables" / "unique_images.parquet").to_pandas()
    assert list(got["sha256"]) == sorted(t["unique_images"]["sha256"])   # rows in key order

    # images: every image and face crop referenced, nothing else, bytes equal to the blob
    referenced = set(t["unique_images"]["sha256"]) | set(t["faces"]["crop_sha256"])
    assert len(referenced) == N_IMAGES + N_FACES
    files = {str(p.relative_to(path)) for p in (path / "images").rglob("*") if p.is_file()}
    assert files == {f"images/{s[:2]}/{s}" for s in referenced}
    for s in referenced:
        b = (path / "images" / s[:2] / s).read_bytes()
        assert b == data["blobs"][s] == wh.blobs.get(s)
        assert hashlib.sha256(b).hexdigest() == s
    dup_only = set(t["duplicate_groups"]["sha256"]) - referenced
    assert len(dup_only) == 1 and not any((path / "images" / s[:2] / s).exists() for s in dup_only)

    for f in ("datasheet.md", "config.yaml", "changes.json", "manifest.json"):
        assert (path / f).is_file(), f
    assert (path / "config.yaml").read_text() == CONFIG_YAML

    # manifest: every other file with its sha256 and size; row counts per table
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest == out["manifest"]
    on_disk = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    for rel, info in manifest["files"].items():
        p = path / rel
        assert info == {"sha256": _file_sha(p), "bytes": len(p.read_bytes())}, rel
    assert manifest["tables"] == {n: len(df) for n, df in t.items()}
    assert manifest["n_images"] == len(referenced)
    assert manifest["name"] == "emo" and manifest["version"] == "1.0.0"
    assert manifest["config_fingerprint"] == FINGERPRINT and manifest["code_version"] == CODE
    assert manifest["previous"] is None
    assert manifest["data_as_of"].startswith(str(t["unique_images"]["first_seen"].max())[:19])

    changes = json.loads((path / "changes.json").read_text())
    assert changes["previous"] is None
    assert {n: c["added"] for n, c in changes["tables"].items()} == {n: len(df) for n, df in t.items()}

    # the release's own files are read-only
    for rel in ["manifest.json", "datasheet.md", "config.yaml", "changes.json"] + [f"tables/{n}.parquet" for n in TABLES]:
        assert not (path / rel).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), rel

    assert verify(path) == []
    # nothing left behind next to the release (the temporary folder was renamed)
    assert [p.name for p in (wh.root / "releases" / "emo").iterdir()] == ["1.0.0"]


def test_code_version_is_a_short_stable_hash(monkeypatch):
    monkeypatch.undo()   # the real function, not the pinned one
    cv = ops.release.code_version()
    assert len(cv) == 16 and all(c in "0123456789abcdef" for c in cv)


def test_release_of_selected_tables(wh, data):
    out = release(wh, tables=["unique_images"])
    path = Path(out["path"])
    assert sorted(p.name for p in (path / "tables").iterdir()) == ["unique_images.parquet"]
    assert out["manifest"]["tables"] == {"unique_images": N_IMAGES}
    assert out["manifest"]["n_images"] == N_IMAGES    # no faces table: no crops
    assert verify(path) == []


# ---- 2. tampering ---------------------------------------------------------------------------------

def test_verify_finds_an_altered_table(wh):
    path = Path(release(wh)["path"])
    f = path / "tables" / "kept_images.parquet"
    f.chmod(0o644)
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0xFF
    f.write_bytes(bytes(b))
    problems = verify(path)
    assert problems and any(p.startswith("tables/kept_images.parquet") for p in problems)
    assert all("kept_images" in p for p in problems)


def test_verify_finds_a_table_with_other_rows(wh, data):
    """A table rewritten as valid Parquet with fewer rows: its hash and its row count differ."""
    path = Path(release(wh)["path"])
    f = path / "tables" / "unique_images.parquet"
    t = pq.read_table(f).slice(0, 3)
    f.chmod(0o644)
    pq.write_table(t, f)
    problems = verify(path)
    assert any(p.startswith("tables/unique_images.parquet: content differs") for p in problems)
    assert any(p == f"tables/unique_images.parquet: 3 rows, manifest says {N_IMAGES}" for p in problems)


def test_verify_finds_a_missing_image_and_an_extra_file(wh, data):
    path = Path(release(wh)["path"])
    sha = data["tables"]["faces"]["crop_sha256"][0]
    (path / "images" / sha[:2] / sha).unlink()
    assert verify(path) == [f"images/{sha[:2]}/{sha}: missing"]
    assert wh.blobs.has(sha)     # deleting the release's copy left the blob store alone

    (path / "notes.txt").write_text("not part of the release")
    problems = verify(path)
    assert "notes.txt: not in the manifest" in problems
    assert f"images/{sha[:2]}/{sha}: missing" in problems and len(problems) == 2


def test_verify_without_manifest(tmp_path):
    problems = verify(tmp_path)
    assert len(problems) == 1 and "manifest.json" in problems[0]


def test_cli_verify_release(wh, clean_env, capsys):
    path = Path(release(wh)["path"])
    assert main(["verify-release", str(path)]) == 0
    assert "intact" in capsys.readouterr().out
    f = path / "datasheet.md"
    f.chmod(0o644)
    f.write_text(f.read_text() + "\nedited by hand\n")
    assert main(["verify-release", str(path)]) == 1
    err = capsys.readouterr().err
    assert "datasheet.md" in err and "content differs" in err


# ---- 3. determinism ---------------------------------------------------------------------------------

def test_same_data_gives_identical_releases(tmp_path, data):
    a = populate(tmp_path / "a", data)
    b = populate(tmp_path / "b", base_data())     # built again from scratch: same values, new objects
    pa_, pb_ = Path(release(a)["path"]), Path(release(b)["path"])
    assert (pa_ / "manifest.json").read_bytes() == (pb_ / "manifest.json").read_bytes()
    for n in TABLES:
        assert (pa_ / "tables" / f"{n}.parquet").read_bytes() == (pb_ / "tables" / f"{n}.parquet").read_bytes(), n
    for f in ("datasheet.md", "changes.json", "config.yaml"):
        assert (pa_ / f).read_bytes() == (pb_ / f).read_bytes(), f
    sa = {k: v[0] for k, v in _snapshot(pa_).items()}
    assert sa == {k: v[0] for k, v in _snapshot(pb_).items()}


def test_row_order_of_the_warehouse_does_not_matter(tmp_path, data):
    shuffled = copy.deepcopy(data)
    for n, df in shuffled["tables"].items():
        shuffled["tables"][n] = df.sample(frac=1, random_state=3).reset_index(drop=True)
    a = Path(release(populate(tmp_path / "a", data))["path"])
    b = Path(release(populate(tmp_path / "b", shuffled))["path"])
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()


# ---- 4. immutability and changes ----------------------------------------------------------------------

def test_rerelease_unchanged_is_reused_and_changes_nothing(wh):
    first = release(wh)
    path = Path(first["path"])
    before = _snapshot(wh.root / "releases")
    again = release(wh)
    assert again["reused"] is True
    assert Path(again["path"]) == path and again["manifest"] == first["manifest"]
    assert _snapshot(wh.root / "releases") == before    # same files, bytes, modes and mtimes
    assert [p.name for p in (wh.root / "releases" / "emo").iterdir()] == ["1.0.0"]


def test_changed_data_needs_a_new_version_and_changes_are_counted(wh, data):
    v1 = release(wh)
    before = _snapshot(wh.root / "releases")
    d2 = changed_data(data)
    populate(wh.root, d2)
    with pytest.raises(FileExistsError, match="choose a new version"):
        release(wh)
    assert _snapshot(wh.root / "releases") == before          # the old release is untouched
    assert [p.name for p in (wh.root / "releases" / "emo").iterdir()] == ["1.0.0"]   # no leftovers
    assert verify(Path(v1["path"])) == []

    v2 = release(wh, "1.1.0")
    assert v2["reused"] is False and wh.releases("emo") == ["1.0.0", "1.1.0"]
    assert v2["manifest"]["previous"] == "1.0.0"
    ch = json.loads(v2["changes"])
    assert ch == json.loads((Path(v2["path"]) / "changes.json").read_text())
    assert ch["previous"] == "1.0.0" and ch["removed_tables"] == []
    t1, t2 = data["tables"], d2["tables"]
    n_relabelled = int((t1["merged_annotations"]["emotion8"] != t2["merged_annotations"]["emotion8"]).sum())
    assert n_relabelled == 1
    assert ch["tables"]["merged_annotations"] == {"added": 0, "removed": 0, "changed": n_relabelled,
                                                  "relabelled": n_relabelled}
    n_added = len(set(t2["unique_images"]["sha256"]) - set(t1["unique_images"]["sha256"]))
    assert n_added == 1
    assert ch["tables"]["unique_images"] == {"added": n_added, "removed": 0, "changed": 0, "relabelled": 0}
    for n in ("faces", "soft_labels", "dataset_splits"):
        assert ch["tables"][n] == {"added": 0, "removed": 0, "changed": 0, "relabelled": 0}, n
    assert ch["tables"]["kept_images"]["added"] == 1
    assert v2["manifest"]["tables"]["unique_images"] == N_IMAGES + 1
    assert v2["manifest"]["n_images"] == N_IMAGES + 1 + N_FACES

    # removing an image: the next version counts it as removed
    d3 = removed_data(d2)
    populate(wh.root, d3)
    for n in ("unique_images", "duplicate_groups", "kept_images"):
        wh.write_table(n, d3["tables"][n])
    v3 = release(wh, "1.2.0")
    ch3 = json.loads(v3["changes"])
    assert ch3["previous"] == "1.1.0"
    n_removed = len(set(t2["unique_images"]["sha256"]) - set(d3["tables"]["unique_images"]["sha256"]))
    assert n_removed == 1
    assert ch3["tables"]["unique_images"] == {"added": 0, "removed": n_removed, "changed": 0, "relabelled": 0}
    assert ch3["tables"]["merged_annotations"] == {"added": 0, "removed": 0, "changed": 0, "relabelled": 0}
    assert v3["manifest"]["tables"]["unique_images"] == N_IMAGES
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        assert verify(wh.release_path("emo", v)) == [], v


def test_changes_against_previous_list_removed_tables(wh, data):
    release(wh)
    (wh.tables_dir / "soft_labels.parquet").unlink()
    out = release(wh, "2.0.0")
    ch = json.loads(out["changes"])
    assert ch["removed_tables"] == ["soft_labels"]
    assert "soft_labels" not in ch["tables"]


def test_cli_release_and_new_version_required(wh, data, clean_env, capsys):
    args = ["release", "--data-dir", str(wh.root), "--name", "cli"]
    assert main([*args, "--version", "1.0.0"]) == 0
    out = capsys.readouterr().out
    path = wh.release_path("cli", "1.0.0")
    assert str(path) in out and "written" in out
    assert verify(path) == []
    assert json.loads((path / "manifest.json").read_text())["tables"] == \
        {n: len(df) for n, df in data["tables"].items()}

    assert main([*args, "--version", "1.0.0"]) == 0            # unchanged: reused
    assert "already released" in capsys.readouterr().out

    populate(wh.root, changed_data(data))
    assert main([*args, "--version", "1.0.0"]) == 1
    err = capsys.readouterr().err
    assert "choose a new version" in err
    assert main([*args, "--version", "1.1.0"]) == 0
    out = capsys.readouterr().out
    assert "relabelled 1" in out and "unique_images +1" in out
    assert main(["verify-release", str(wh.release_path("cli", "1.1.0"))]) == 0


def test_previous_version_is_the_latest_by_version_number(wh, data):
    release(wh, "1.9.0")
    release(wh, "1.10.0")
    out = release(wh, "1.11.0")
    assert out["manifest"]["previous"] == "1.10.0"
    assert json.loads(out["changes"])["previous"] == "1.10.0"


def test_rerelease_of_an_older_version_on_unchanged_data_is_reused(wh):
    first = release(wh, "1.0.0")
    release(wh, "1.1.0")                 # same data, a newer version
    again = release(wh, "1.0.0")         # the same data, the same version: must be reused
    assert again["reused"] is True and again["manifest"] == first["manifest"]


# ---- 5. Hugging Face export -----------------------------------------------------------------------------

def test_hf_export_images(exported):
    import datasets

    d, w, out = exported
    t = d["tables"]
    dest = w.release_export_path("emo", "1.0.0", "hf")
    assert Path(out["export_paths"]["hf"]) == dest
    dd = datasets.load_from_disk(str(dest / "images"))
    split_of = dict(zip(t["dataset_splits"].query("scheme == 'findingemo_80_20'")["sha256"],
                        t["dataset_splits"].query("scheme == 'findingemo_80_20'")["split"]))
    expected = pd.Series([split_of.get(s, "unsplit") for s in t["unique_images"]["sha256"]]).value_counts().to_dict()
    assert expected == {"train": 8, "test": 2, "unsplit": 2}
    assert {k: len(v) for k, v in dd.items()} == expected
    assert out["exports"]["hf"]["images"] == expected

    e8 = dd["train"].features["emotion8"]
    assert isinstance(e8, datasets.ClassLabel) and e8.names == EMO8
    label_of = dict(zip(t["merged_annotations"]["sha256"], t["merged_annotations"]["emotion8"]))
    url_of = {r.sha256: (r.final_url if isinstance(r.final_url, str) else r.url) for r in t["unique_images"].itertuples()}
    seen = set()
    for split, ds in dd.items():
        raw = ds.cast_column("image", datasets.Image(decode=False))
        for row in raw:
            s = row["sha256"]
            seen.add(s)
            assert split_of.get(s, "unsplit") == split
            assert row["image"]["bytes"] == d["blobs"][s]
            assert row["emotion8"] == (EMO8.index(label_of[s]) if s in label_of else -1)
            assert row["source_url"] == url_of[s] and row["source_url"]
            assert row["license"] == LICENSE_NOTE
    assert seen == set(t["unique_images"]["sha256"])
    # one decoded image, to be sure the bytes are a readable image of the right size
    row = dd["train"][0]
    u = t["unique_images"].set_index("sha256").loc[row["sha256"]]
    assert row["image"].size == (u["width"], u["height"])


def test_hf_export_faces(exported):
    import datasets

    d, w, _ = exported
    t = d["tables"]
    dd = datasets.load_from_disk(str(w.release_export_path("emo", "1.0.0", "hf") / "faces"))
    expected = pd.Series(FACE_SPLIT).value_counts().to_dict()
    assert {k: len(v) for k, v in dd.items()} == expected == {"train": 4, "validation": 2}
    hl = dd["train"].features["hard_label"]
    assert isinstance(hl, datasets.ClassLabel) and hl.names == AFFECTNET8
    soft = t["soft_labels"].set_index("face_id")
    faces = t["faces"].set_index("face_id")
    url_of = {r.sha256: (r.final_url if isinstance(r.final_url, str) else r.url) for r in t["unique_images"].itertuples()}
    split_of = dict(zip(t["dataset_splits"]["item_id"], t["dataset_splits"]["split"]))
    seen = set()
    for split, ds in dd.items():
        for row in ds.cast_column("image", datasets.Image(decode=False)):
            fid = row["face_id"]
            seen.add(fid)
            assert split_of[fid] == split
            f = faces.loc[fid]
            assert row["image"]["bytes"] == d["blobs"][f["crop_sha256"]]
            assert row["sha256"] == f["sha256"]
            assert row["box"] == [float(f[c]) for c in "xywh"]
            assert row["hard_label"] == AFFECTNET8.index(soft.loc[fid, "hard_label"])
            assert len(row["soft_label"]) == 8
            assert row["soft_label"] == [soft.loc[fid, c] for c in SOFT]
            assert math.isclose(sum(row["soft_label"]), 1.0)
            assert row["difficulty"] == soft.loc[fid, "difficulty"]
            assert row["source_url"] == url_of[f["sha256"]] and row["license"] == LICENSE_NOTE
    assert seen == set(t["faces"]["face_id"])


# ---- 6. WebDataset export --------------------------------------------------------------------------------

def _wds_samples(paths: list[Path]) -> list[dict]:
    import webdataset as wds

    return list(wds.WebDataset([str(p) for p in paths], shardshuffle=False, empty_check=False))


def test_webdataset_export(exported):
    d, w, out = exported
    t = d["tables"]
    dest = w.release_export_path("emo", "1.0.0", "webdataset")
    assert Path(out["export_paths"]["webdataset"]) == dest
    shards = sorted(dest.glob("*.tar"))
    assert {p.name for p in shards} == {"images-train-000000.tar", "images-test-000000.tar",
                                        "images-unsplit-000000.tar", "faces-train-000000.tar",
                                        "faces-validation-000000.tar"}
    label_of = dict(zip(t["merged_annotations"]["sha256"], t["merged_annotations"]["emotion8"]))
    split_img = dict(zip(t["dataset_splits"].query("scheme == 'findingemo_80_20'")["sha256"],
                         t["dataset_splits"].query("scheme == 'findingemo_80_20'")["split"]))
    url_of = {r.sha256: (r.final_url if isinstance(r.final_url, str) else r.url) for r in t["unique_images"].itertuples()}
    fmt_of = dict(zip(t["unique_images"]["sha256"], t["unique_images"]["image_format"]))
    ext = {"png": "png", "jpeg": "jpg"}

    img_counts, seen = {}, set()
    for split in ("train", "test", "unsplit"):
        samples = _wds_samples([dest / f"images-{split}-000000.tar"])
        img_counts[split] = len(samples)
        for s in samples:
            meta = json.loads(s["json"])
            sha = meta["sha256"]
            seen.add(sha)
            assert s["__key__"] == sha
            assert s[ext[fmt_of[sha]]] == d["blobs"][sha]
            assert meta["split"] == split == split_img.get(sha, "unsplit")
            assert meta["emotion8"] == label_of.get(sha)
            assert meta["source_url"] == url_of[sha] and meta["license"] == LICENSE_NOTE
    assert seen == set(t["unique_images"]["sha256"])
    expected = pd.Series([split_img.get(s, "unsplit") for s in t["unique_images"]["sha256"]]).value_counts().to_dict()
    assert img_counts == expected == out["exports"]["webdataset"]["images"]

    soft = t["soft_labels"].set_index("face_id")
    faces = t["faces"].set_index("face_id")
    split_face = dict(zip(t["dataset_splits"]["item_id"], t["dataset_splits"]["split"]))
    face_counts, seen = {}, set()
    for split in ("train", "validation"):
        samples = _wds_samples([dest / f"faces-{split}-000000.tar"])
        face_counts[split] = len(samples)
        for s in samples:
            meta = json.loads(s["json"])
            fid = meta["face_id"]
            seen.add(fid)
            assert s["__key__"] == fid.replace(":", "_")
            assert s["png"] == d["blobs"][faces.loc[fid, "crop_sha256"]]
            assert split_face[fid] == split == meta["split"]
            assert meta["hard_label"] == soft.loc[fid, "hard_label"]
            assert [meta[c] for c in SOFT] == [soft.loc[fid, c] for c in SOFT]
            assert meta["source_url"] == url_of[faces.loc[fid, "sha256"]] and meta["license"] == LICENSE_NOTE
    assert seen == set(t["faces"]["face_id"])
    assert face_counts == pd.Series(FACE_SPLIT).value_counts().to_dict() == out["exports"]["webdataset"]["faces"]

    # the tar members themselves, independently of the webdataset reader
    with tarfile.open(dest / "images-unsplit-000000.tar") as tf:
        names = sorted(tf.getnames())
    assert len(names) == 2 * expected["unsplit"]


def test_exports_live_outside_the_release(exported):
    _, _, out = exported
    path = Path(out["path"])
    assert verify(path) == []
    assert not any(p.suffix == ".tar" for p in path.rglob("*"))
    assert not Path(out["export_paths"]["hf"]).is_relative_to(path)


# ---- 7. the datasheet --------------------------------------------------------------------------------------

def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    nxt = text.find("\n## ", start + 1)
    return text[start:nxt if nxt >= 0 else None]


def test_datasheet_numbers_match_the_tables(wh, data):
    out = release(wh)
    text = (Path(out["path"]) / "datasheet.md").read_text()
    t = data["tables"]
    assert text.startswith("# Datasheet: emo 1.0.0")
    assert CODE in text and FINGERPRINT in text

    n_hashed, n_unique = len(t["duplicate_groups"]), t["unique_images"]["sha256"].nunique()
    assert (n_hashed, n_unique) == (13, 12)
    assert (f"{n_hashed} distinct images hashed; {n_hashed - n_unique} removed as near duplicates"
            in _section(text, "Collection process"))
    assert f"; {n_unique} unique images." in text

    for status, n in t["kept_images"]["status"].value_counts().items():
        assert f"| {status} | {n} |" in _section(text, "Collection process"), status

    labels = _section(text, "Labels")
    counts = t["merged_annotations"]["emotion8"].value_counts()
    assert counts.sum() == len(E8)
    rows = [line for line in labels.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in EMO8]
    assert sorted(rows) == sorted(f"| {e} | {n} |" for e, n in counts.items())
    # in descending order of count
    assert [int(r.split(" | ")[1].rstrip(" |")) for r in rows] == sorted(counts.values, reverse=True)

    # soft labels: faces and mean entropy (bits) per difficulty subset
    sl = t["soft_labels"]
    p = sl[SOFT].to_numpy()
    h = -(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0)).sum(axis=1)
    for subset, g in pd.DataFrame({"d": sl["difficulty"], "h": h}).groupby("d"):
        assert f"| {subset} | {len(g)} | {g['h'].mean():.3f} | {g['h'].median():.3f} |" in labels, subset

    prov = _section(text, "Provenance and licences")
    hosts = t["unique_images"]["url"].str.extract(r"^[a-z]+://([^/:]+)")[0].value_counts()
    for host, n in hosts.items():
        assert f"| {host} | {n} |" in prov, host

    sp = _section(text, "Splits and baselines")
    for (scheme, split), n in t["dataset_splits"].groupby(["scheme", "split"]).size().items():
        assert f"| {scheme} | {split} | {n} |" in sp, (scheme, split)

    gaps = _section(text, "Known biases and gaps")
    assert f"{counts.max() / counts.min():.1f}×" in gaps
    moved = t["dataset_splits"]["source_split"].notna() & (t["dataset_splits"]["source_split"] != t["dataset_splits"]["split"])
    assert f"keep near-duplicate families together: {int(moved.sum())}" in gaps


# ---- 8. bad input -------------------------------------------------------------------------------------------

def test_unknown_format_is_refused(wh):
    with pytest.raises(ValueError, match="parquet-zip"):
        release(wh, formats=["hf", "parquet-zip"])
    assert not (wh.root / "releases").exists() or not any((wh.root / "releases").rglob("*"))


def test_unknown_table_is_refused(wh):
    with pytest.raises(FileNotFoundError, match="no_such_table"):
        release(wh, tables=["unique_images", "no_such_table"])
    assert wh.releases("emo") == []


def test_missing_blob_is_refused(wh, data):
    sha = data["tables"]["unique_images"]["sha256"][4]
    wh.blobs.path(sha).unlink()
    with pytest.raises(FileNotFoundError, match=sha):
        release(wh)
    assert wh.releases("emo") == []
    rel_dir = wh.root / "releases" / "emo"
    assert not rel_dir.exists() or list(rel_dir.iterdir()) == []      # no temporary folder left


def test_missing_crop_blob_is_refused(wh, data):
    sha = data["tables"]["faces"]["crop_sha256"][2]
    wh.blobs.path(sha).unlink()
    with pytest.raises(FileNotFoundError, match=sha):
        release(wh)


def test_cli_release_errors(wh, data, clean_env, capsys):
    args = ["release", "--data-dir", str(wh.root), "--name", "cli", "--version", "1.0.0"]
    with pytest.raises(SystemExit) as e:       # argparse refuses a format outside its choices
        main([*args, "--format", "zip"])
    assert e.value.code == 2
    capsys.readouterr()
    wh.blobs.path(data["tables"]["unique_images"]["sha256"][0]).unlink()
    assert main(args) == 1
    assert data["tables"]["unique_images"]["sha256"][0] in capsys.readouterr().err


def test_cli_release_without_warehouse(tmp_path, clean_env, capsys):
    for d in (tmp_path / "nothing_here", Warehouse(tmp_path / "empty").ensure().root):   # no dir; no tables
        rc = main(["release", "--data-dir", str(d), "--name", "x", "--version", "1.0.0"])
        err = capsys.readouterr().err
        assert rc == 2, d
        assert "no warehouse" in err and str(d) in err
        assert not (d / "releases").exists()


def test_the_assets_automatic_versions_order_by_time_and_find_their_content_again():
    """dataset_release without a configured version: 0.0.<n>-<content>; the same content finds its
    release, new content takes the next number, and the versions order as they were made."""
    from assets.release import auto_version
    from ops.release import version_key

    assert auto_version([], "aaa") == "0.0.0-aaa"
    assert auto_version(["0.0.0-aaa"], "aaa") == "0.0.0-aaa"
    made = ["0.0.0-aaa"]
    for content in ("bbb", "ccc", "ddd", "eee", "fff", "ggg", "hhh", "iii", "jjj", "kkk"):
        made.append(auto_version(made, content))
    assert made[-1] == "0.0.10-kkk" and sorted(made, key=version_key) == made
    assert auto_version(made + ["1.0.0"], "bbb") == "0.0.1-bbb"


def test_the_datasheet_of_an_empty_build_says_so_instead_of_failing():
    """A build where every item was dropped still gets a datasheet: empty sections, no crash."""
    import pyarrow as pa

    from ops.release.datasheet import build_datasheet

    empty = {
        "annotations": pa.table({"source": pa.array([], pa.string()), "taxonomy": pa.array([], pa.string()),
                                 "annotator_id": pa.array([], pa.string()), "image_id": pa.array([], pa.string()),
                                 "synthetic_annotator": pa.array([], pa.bool_())}),
        "merged_annotations": pa.table({"emotion8": pa.array([], pa.string()), "keep_majority": pa.array([], pa.string()),
                                        "n_annotators": pa.array([], pa.int64()),
                                        "emotion8_all_agree": pa.array([], pa.bool_())}),
        "face_status": pa.table({"mode": pa.array([], pa.string()), "status": pa.array([], pa.string()),
                                 "n_faces": pa.array([], pa.int64())}),
    }
    sheet = build_datasheet(empty, name="empty", version="0.0.1", config_fingerprint="c", code_version="v")
    assert sheet.startswith("# Datasheet: empty 0.0.1") and "_(none)_" in sheet


def test_content_version_ignores_per_build_bookkeeping(tmp_path, data):
    """A rebuild that only flips training_runs.trained_now (a run found again in the model store)
    names the same content: the auto-versioned release is found again, and a released training_runs
    has no trained_now; a changed metric is new content."""
    from assets.release import auto_version
    from ops.release import content_version

    runs = pd.DataFrame({"run_id": ["a", "b"], "task": ["emo8", "emo8"], "model_version": ["m1", "m2"],
                         "extractor": ["x", "x"], "loss": ["ce", "ce"], "lr": [0.1, 0.01], "seed": [0, 0],
                         "trained_now": [True, True]})
    data["tables"]["training_runs"] = runs
    wh = populate(tmp_path / "data", data)
    names = [*TABLES, "training_runs"]
    v1 = content_version(wh, names, FINGERPRINT)
    out = release(wh, version=auto_version([], v1), tables=names)
    assert "trained_now" not in pq.read_table(Path(out["path"]) / "tables" / "training_runs.parquet").column_names

    wh.write_table("training_runs", runs.assign(trained_now=False))          # the rebuild found both runs again
    assert content_version(wh, names, FINGERPRINT) == v1
    again = release(wh, version=auto_version(wh.releases("emo"), v1), tables=names)
    assert again["reused"] is True and wh.releases("emo") == [f"0.0.0-{v1}"]

    wh.write_table("training_runs", runs.assign(lr=[0.1, 0.02]))             # a real change
    assert content_version(wh, names, FINGERPRINT) != v1


def test_content_version_ignores_the_timings_of_a_retried_download(tmp_path, data):
    """A build that downloads a transient failure again rewrites its row's attempts, timings and build
    attempts: the same content, so the release is found again; a row whose status changed is new content."""
    from ops.release import content_version

    dl = pd.DataFrame({"candidate_id": ["a", "b"], "status": ["ok", "timeout"], "sha256": ["1" * 64, None],
                       "attempts": [1, 3], "elapsed_s": [0.2, 8.0],
                       "downloaded_at": pd.to_datetime(["2026-11-30 01:00", "2026-11-30 01:00"], utc=True),
                       "build_attempts": [1, 1]})
    data["tables"]["downloaded_images"] = dl
    wh = populate(tmp_path / "data", data)
    names = [*TABLES, "downloaded_images"]
    v1 = content_version(wh, names, FINGERPRINT)
    retried = dl.assign(attempts=[1, 2], elapsed_s=[0.2, 8.1], build_attempts=[1, 2],
                        downloaded_at=pd.to_datetime(["2026-11-30 01:00", "2026-11-30 02:00"], utc=True))
    wh.write_table("downloaded_images", retried)
    assert content_version(wh, names, FINGERPRINT) == v1
    wh.write_table("downloaded_images", retried.assign(status=["ok", "ok"], sha256=["1" * 64, "2" * 64]))
    assert content_version(wh, names, FINGERPRINT) != v1
