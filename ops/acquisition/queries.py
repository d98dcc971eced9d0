"""Search-query generation (FindingEmo §2.3.1) and recovery of FindingEmo's keyword sets.

FindingEmo generated image-search queries as every combination of three keyword sets: emotion
words, words for people, and social settings ("happy youngsters birthday"). The paper does not list
the sets, but the released dataset keeps each image under a folder named after its query
(``/Run_2/Loving toddlers sports/<file>``), so the sets can be recovered from those names:
:func:`recover_keyword_sets` does that, and ``ops/data/findingemo_keywords.json`` holds the result
(a test checks that the file equals a fresh recovery from the ``findingemo-light`` package).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

import pandas as pd

KEYWORD_FILE = "findingemo_keywords.json"


def findingemo_data_dir() -> Path:
    """The data folder of the installed ``findingemo-light`` package."""
    try:
        import findingemo_light
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise RuntimeError("the findingemo-light package is not installed (pip install findingemo-light)") from e
    return Path(findingemo_light.__file__).parent / "data"


def query_folder(rel_path: str) -> str | None:
    """``/Run_2/Loving toddlers sports/x.jpg`` -> ``Loving toddlers sports`` (None if no folder)."""
    parts = [p for p in rel_path.split("/") if p]
    return parts[1] if len(parts) >= 3 else None


def _splits(tokens: list[str]) -> Iterable[tuple[str, str, str]]:
    n = len(tokens)
    for i in range(1, n - 1):
        for j in range(i + 1, n):
            yield " ".join(tokens[:i]), " ".join(tokens[i:j]), " ".join(tokens[j:])


def recover_keyword_sets(folder_names: Iterable[str]) -> dict[str, list[str]]:
    """Recover (emotions, people, settings) from query strings "<emotion> <people> <setting>".

    Words may contain spaces ("Fed up", "court of law"), so a name of n tokens has several possible
    splits. Names of exactly three tokens are unambiguous and seed the three sets; then, until
    nothing changes, each longer name takes the split whose parts are most often already known
    (ties: the split whose unknown parts recur most often in the same position over all names:
    "nursing home" ends many names, "adults nursing" sits in the middle of few), and its unknown
    parts join the sets.
    """
    names = sorted({" ".join(n.split()) for n in folder_names if n and len(n.split()) >= 3})
    sets: list[set[str]] = [set(), set(), set()]
    for name in names:
        t = name.split()
        if len(t) == 3:
            for k in range(3):
                sets[k].add(t[k])
    # how often a string occurs in each position over all names: prefix, infix, suffix
    freq: list[Counter] = [Counter(), Counter(), Counter()]
    for name in names:
        t = name.split()
        for i in range(1, len(t)):
            freq[0][" ".join(t[:i])] += 1
            freq[2][" ".join(t[i:])] += 1
            for j in range(i + 1, len(t)):
                freq[1][" ".join(t[i:j])] += 1
    longer = [n for n in names if len(n.split()) > 3]
    for _ in range(10):
        changed = False
        for name in longer:
            best = None
            for parts in _splits(name.split()):
                known = sum(parts[k] in sets[k] for k in range(3))
                # tie-break: a new word should be one that recurs in its position over many names
                support = sum(freq[k][parts[k]] for k in range(3) if parts[k] not in sets[k])
                score = (known, support, -len(parts[1].split()))
                if best is None or score > best[0]:
                    best = (score, parts)
            for k, part in enumerate(best[1]):
                if part not in sets[k]:
                    sets[k].add(part)
                    changed = True
        if not changed:
            break
    return {"emotions": sorted(sets[0]), "people": sorted(sets[1]), "settings": sorted(sets[2])}


def recover_findingemo_keywords(data_dir: Path | None = None) -> dict[str, list[str]]:
    """Recover the keyword sets from the query folders of FindingEmo-Light's URL list and annotations."""
    d = data_dir or findingemo_data_dir()
    with open(d / "dataset_urls_exploded.json") as fh:
        recs = json.load(fh)
    names = {query_folder(r["rel_path"]) for r in recs}
    ann = pd.read_csv(d / "annotations_single.ann", usecols=["image_path"])
    names |= {query_folder(p) for p in ann["image_path"]}
    return recover_keyword_sets(n for n in names if n)


@lru_cache(maxsize=1)
def findingemo_keywords() -> dict[str, list[str]]:
    """The keyword sets FindingEmo used (§2.3.1), as recovered and stored in ops/data."""
    text = resources.files("ops").joinpath("data", KEYWORD_FILE).read_text()
    return json.loads(text)


def query_id(query: str) -> str:
    """A stable id for a query string (first 16 hex digits of its SHA-1)."""
    return hashlib.sha1(query.encode("utf-8")).hexdigest()[:16]


def generate_queries(emotions: list[str], people: list[str], settings: list[str]) -> pd.DataFrame:
    """Every combination emotion x people x setting (FindingEmo §2.3.1), in a deterministic order.

    Order: emotions, then people, then settings, each in the given order; the query text is
    "<emotion> <people> <setting>" lower-cased as a search engine would take it is NOT applied, so
    that the emotion word can be read back from the query (Supplement II tie-breaks use it).
    """
    for label, words in (("emotions", emotions), ("people", people), ("settings", settings)):
        if not words:
            raise ValueError(f"keyword set {label!r} is empty: every query needs one word of each set")
        dup = [w for w, c in Counter(words).items() if c > 1]
        if dup:
            raise ValueError(f"keyword set {label!r} repeats {dup}")
    rows = []
    i = 0
    for e in emotions:
        for p in people:
            for s in settings:
                q = f"{e} {p} {s}"
                rows.append({"query_index": i, "query_id": query_id(q), "query": q,
                             "emotion_word": e, "people_word": p, "setting_word": s})
                i += 1
    return pd.DataFrame(rows)


def batch_of(query_index: int, queries_per_batch: int) -> str:
    """The scrape-batch (partition) key of a query: queries are cut into consecutive batches."""
    return f"b{query_index // queries_per_batch:05d}"
