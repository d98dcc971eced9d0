import json
from importlib import resources

import pytest

from ops.acquisition.batches import batch_keys, extend_batches, parse_batch_key
from ops.acquisition.queries import (
    findingemo_keywords, generate_queries, query_folder, recover_findingemo_keywords, recover_keyword_sets,
)


def test_generate_queries_is_every_combination_in_order():
    q = generate_queries(["Happy", "Fed up"], ["people", "toddlers"], ["birthday", "court of law", "war"])
    assert len(q) == 2 * 2 * 3
    assert q["query"].tolist()[:4] == ["Happy people birthday", "Happy people court of law", "Happy people war",
                                       "Happy toddlers birthday"]
    assert q["query"].iloc[-1] == "Fed up toddlers war"
    assert q["query_index"].tolist() == list(range(12))
    assert q["query_id"].is_unique
    # deterministic
    assert generate_queries(["Happy", "Fed up"], ["people", "toddlers"],
                            ["birthday", "court of law", "war"]).equals(q)


def test_generate_queries_rejects_empty_and_repeated_sets():
    with pytest.raises(ValueError, match="people"):
        generate_queries(["Happy"], [], ["war"])
    with pytest.raises(ValueError, match="repeats"):
        generate_queries(["Happy", "Happy"], ["people"], ["war"])


def test_recover_keyword_sets_handles_multiword_terms():
    emotions, people, settings = ["Happy", "Fed up", "Sad"], ["adults", "toddlers", "forty-something"], \
        ["home", "nursing home", "court of law", "war"]
    names = [f"{e} {p} {s}" for e in emotions for p in people for s in settings]
    got = recover_keyword_sets(names)
    assert got == {"emotions": sorted(emotions), "people": sorted(people), "settings": sorted(settings)}


def test_query_folder():
    assert query_folder("/Run_2/Loving toddlers sports/haiti-kids.jpg") == "Loving toddlers sports"
    assert query_folder("x.jpg") is None


def test_stored_findingemo_keywords_equal_a_fresh_recovery():
    stored = json.loads(resources.files("ops").joinpath("data", "findingemo_keywords.json").read_text())
    assert stored == recover_findingemo_keywords()
    k = findingemo_keywords()
    assert "Fed up" in k["emotions"] and "court of law" in k["settings"] and "nursing home" in k["settings"]
    assert "toddlers" in k["people"] and "forty-something" in k["people"]
    # every folder name of the package is a combination of the recovered sets
    from ops.acquisition.queries import findingemo_data_dir
    recs = json.load(open(findingemo_data_dir() / "dataset_urls_exploded.json"))
    combos = {f"{e} {p} {s}" for e in k["emotions"] for p in k["people"] for s in k["settings"]}
    names = {query_folder(r["rel_path"]) for r in recs}
    assert names <= combos


def test_batch_keys_roundtrip():
    keys = batch_keys("q", 105, 50)
    assert keys == ["q000000-000050", "q000050-000100", "q000100-000105"]
    assert parse_batch_key(keys[2]) == ("q", 100, 105)
    assert batch_keys("u", 3, 5) == ["u0000000-0000003"]
    with pytest.raises(ValueError, match="invalid scrape batch key"):
        parse_batch_key("b00001")


def test_extend_batches_keeps_existing_cuts():
    first = extend_batches("q", 10, 4)
    assert first == ["q000000-000004", "q000004-000008", "q000008-000010"]
    assert extend_batches("q", 14, 4, first) == first + ["q000010-000014"]
    assert extend_batches("q", 10, 4, first) == first
    assert extend_batches("u", 3, 2, first) == ["u0000000-0000002", "u0000002-0000003"]
