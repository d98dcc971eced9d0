import pytest

from ops.config import ConfigError, EmoforgeConfig, load_config


def test_defaults_follow_findingemo():
    c = EmoforgeConfig()
    assert (c.acquisition.min_width, c.acquisition.max_width) == (800, 1600)
    assert c.acquisition.provider.results_per_query == 500
    assert c.acquisition.provider.kind == "ddgs"
    assert "shutterstock.com" in c.acquisition.blacklist_domains


def test_valid_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("acquisition:\n  max_width: 3200\n  download:\n    concurrency: 4\ndedup:\n  threshold: 6\n")
    c = load_config(p)
    assert c.acquisition.max_width == 3200 and c.acquisition.download.concurrency == 4 and c.dedup.threshold == 6


@pytest.mark.parametrize("text, key", [
    ("acquisition:\n  downlaod: {}\n", "acquisition.downlaod: unknown key"),
    ("acquisition:\n  download:\n    concurrency: 0\n", "acquisition.download.concurrency"),
    ("acquisition:\n  provider:\n    kind: google\n", "acquisition.provider.kind"),
    ("dedup:\n  threshold: 4\n  bands: 3\n", "dedup"),
    ("acquisition:\n  min_width: 2000\n", "min_width"),
    ("bogus: 1\n", "bogus: unknown key"),
])
def test_errors_name_the_key_and_file(tmp_path, text, key):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert key in str(e.value) and str(p) in str(e.value)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "x.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    d = tmp_path / "conf"
    d.mkdir()
    gold = tmp_path / "elsewhere" / "gold.csv"   # an absolute path stays as it is
    gold.parent.mkdir()
    gold.write_text("image_id,keep\n")
    (d / "a.csv").write_text("i,w\n")           # files the configuration names must exist (checked at load)
    (d / "c.yaml").write_text("data_dir: out\nacquisition:\n  provider:\n    url_list:\n      path: lists/u.csv\n"
                              "annotations:\n  sources:\n    - {kind: long, path: a.csv, mapping: {image_id: i, annotator_id: w}}\n"
                              f"  grading:\n    gold_path: {gold}\n")
    monkeypatch.chdir(tmp_path)
    c = load_config("conf/c.yaml")
    assert c.data_dir == str(d / "out")
    assert c.acquisition.provider.url_list.path == str(d / "lists" / "u.csv")
    assert c.annotations.sources[0].path == str(d / "a.csv")
    assert c.annotations.grading.gold_path == str(gold)
