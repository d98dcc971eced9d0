"""ops/hashing.py: the file hash and the source hash every "did this change?" decision uses."""

import hashlib

from ops.hashing import sha256_file, source_hash


def test_sha256_file_matches_hashlib_over_several_chunks(tmp_path):
    data = bytes(range(256)) * 9000  # 2.2 MiB: three 1 MiB reads
    p = tmp_path / "blob.bin"
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_source_hash_covers_paths_bytes_and_extras_in_sorted_order(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "b.py").write_text("B = 2\n")
    (tmp_path / "pkg" / "sub" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not source")
    h = hashlib.sha256()
    for rel, text in [("pkg/b.py", "B = 2\n"), ("pkg/sub/a.py", "A = 1\n")]:
        h.update(rel.encode())
        h.update(text.encode())
    h.update(b"torch=2")
    assert source_hash(["pkg"], ["torch=2"], root=tmp_path) == h.hexdigest()[:16]

    before = source_hash(["pkg"], root=tmp_path)
    (tmp_path / "pkg" / "notes.txt").write_text("edited, still not source")
    assert source_hash(["pkg"], root=tmp_path) == before
    (tmp_path / "pkg" / "sub" / "a.py").write_text("A = 3\n")
    assert source_hash(["pkg"], root=tmp_path) != before
