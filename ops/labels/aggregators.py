"""Label aggregation behind one interface, in the manner of crowd-kit's aggregators.

Every policy is a small class: ``fit(votes) -> self`` on a long table of votes (columns ``task``,
``worker``, ``label``, as crowd-kit takes them), and the fitted results in attributes:

    labels_       task -> aggregated label, or None when the policy leaves the task unresolved
    probas_       task x label: the vote shares (counting policies: the human soft label) or the
                  posterior (annotator models)
    confidence_   task -> the winner's share or posterior (NaN when unresolved)
    status_       task -> 'resolved' | 'unresolved' | 'no_votes'
    reasons_      task -> why, in words (a tie, a share below the threshold, the posterior ...)
    estimates_    annotator estimates (crowd-kit models: confusion matrices, priors, skills)

Policies register under a name (:func:`register`); the configuration's list of merge policies is
:func:`aggregator_names`, and :func:`make_aggregator` builds one from a name or a mapping. Soft labels
from models (AffectNet+ §3.4) are aggregators of the same shape.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

RESOLVED, UNRESOLVED, NO_VOTES = "resolved", "unresolved", "no_votes"
ESTIMATE_COLUMNS = ("method", "level", "annotator_id", "kind", "true_label", "observed_label", "value")

_REGISTRY: dict[str, tuple[type["Aggregator"], dict[str, Any]]] = {}


def register(name: str, **defaults: Any):
    """Class decorator: make an aggregator available under ``name`` (with default parameters)."""
    def deco(cls: type["Aggregator"]) -> type["Aggregator"]:
        if name in _REGISTRY:
            raise ValueError(f"aggregator {name!r} registered twice")
        _REGISTRY[name] = (cls, dict(defaults))
        return cls
    return deco


def aggregator_names() -> tuple[str, ...]:
    """The registered policy names, in registration order (the config's ``merge.policy`` choices)."""
    return tuple(_REGISTRY)


def make_aggregator(spec: "str | Mapping[str, Any] | Aggregator") -> "Aggregator":
    """An aggregator from a registered name ("majority", "dawid_skene", ...), a mapping
    ``{"kind": name, **params}``, or an aggregator (returned as is)."""
    if isinstance(spec, Aggregator):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    spec = dict(spec)
    kind = str(spec.pop("kind", spec.pop("name", "majority"))).lower().replace("-", "_")
    if kind not in _REGISTRY:
        raise ValueError(f"unknown merge policy {kind!r} ({', '.join(_REGISTRY)})")
    cls, defaults = _REGISTRY[kind]
    return cls(**{**defaults, **spec})


def empty_estimates() -> pd.DataFrame:
    """Empty annotator-estimates frame (Dawid-Skene confusions, priors, skills)."""
    return pd.DataFrame({c: pd.Series(dtype="float64" if c == "value" else "str") for c in ESTIMATE_COLUMNS})


def _fmt_share(x: float) -> str:
    return f"{100 * x:.0f}%"


class Aggregator:
    """Base of every policy: subclasses implement :meth:`_fit_counts` (counting policies) or
    override :meth:`fit`."""

    name: ClassVar[str] = "aggregator"

    def describe(self) -> str:
        """The policy and its parameters as text, stored per merged row (provenance)."""
        params = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return f"{self.name}(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"

    # ---- fitting ------------------------------------------------------------------------------
    def fit(self, votes: pd.DataFrame, *, tasks: Sequence[str] | None = None,
            labels: Sequence[str] | None = None, tie_labels: Mapping[str, str | None] | None = None,
            level: str | None = None) -> "Aggregator":
        """Aggregate ``votes`` (task, worker, label). ``tasks``: every task to report, also those
        without votes (default: the voted ones); ``labels``: the label universe, in the order of
        ``probas_`` (default: sorted voted labels); ``tie_labels``: task -> a label that breaks a
        tie (the search query's emotion, AffectNet+ Supplement II); ``level``: a name for the
        estimates."""
        tasks_idx = pd.Index(pd.unique(votes["task"].astype(str)) if tasks is None else [str(t) for t in tasks])
        universe = list(labels) if labels is not None else sorted(pd.unique(votes["label"].astype(str)))
        counts = _count_matrix(votes["task"].astype(str), votes["label"].astype(str), tasks_idx, universe)
        ties = [None if tie_labels is None else tie_labels.get(t) for t in tasks_idx]
        winner, status, reason, conf = self._fit_counts(counts, universe, ties)
        self._set(tasks_idx, universe, counts, winner, status, reason, conf, empty_estimates())
        return self

    def _fit_counts(self, C: np.ndarray, universe: list[str], ties: list[str | None]):
        """The counting policies' hook (Majority, Plurality): (winner, status, reason, confidence)
        per task from the (tasks x labels) vote counts ``C``. Policies that model annotators
        (CrowdKit) override :meth:`fit` instead and never reach this."""
        raise NotImplementedError(f"{type(self).__name__} must implement _fit_counts or override fit")

    def _set(self, tasks: pd.Index, universe: list[str], C: np.ndarray, winner, status, reason, conf,
             estimates: pd.DataFrame, probas: np.ndarray | None = None) -> None:
        tot = C.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.where(tot > 0, C / np.where(tot > 0, tot, 1), np.nan)
        self.labels_ = pd.Series(winner, index=tasks, dtype=object, name="label")
        self.probas_ = pd.DataFrame(shares if probas is None else probas, index=tasks, columns=universe)
        self.confidence_ = pd.Series(np.asarray(conf, dtype="float64"), index=tasks, name="confidence")
        self.status_ = pd.Series(status, index=tasks, dtype=object, name="status")
        self.reasons_ = pd.Series(reason, index=tasks, dtype=object, name="reason")
        self.estimates_ = estimates


def _count_matrix(rows: pd.Series, cols: pd.Series, row_index: pd.Index, col_labels: list[str]) -> np.ndarray:
    """counts[i, j] = number of (row_index[i], col_labels[j]) pairs."""
    r = row_index.get_indexer(rows.astype(str))
    c = pd.Index(col_labels).get_indexer(cols.astype(str))
    ok = (r >= 0) & (c >= 0)
    flat = np.bincount(r[ok] * len(col_labels) + c[ok], minlength=len(row_index) * len(col_labels))
    return flat.reshape(len(row_index), len(col_labels)).astype("int64")


def _blank(n: int):
    return [None] * n, [NO_VOTES] * n, ["no votes from kept annotations"] * n, np.full(n, np.nan)


@register("majority")
@dataclass
class Majority(Aggregator):
    """Majority vote with noise removal (AffectNet+ Supplement II; FindingEmo §A.5).

    Labels with fewer than ``min_votes_per_label`` votes are removed first as noise; the winner then
    needs strictly more than ``min_share`` of the remaining votes, otherwise the task is unresolved.
    """

    min_votes_per_label: int = 1
    min_share: float = 0.5
    name: ClassVar[str] = "majority"

    def __post_init__(self) -> None:
        if self.min_votes_per_label < 1:
            raise ValueError("min_votes_per_label must be >= 1")
        if not 0 <= self.min_share < 1:
            raise ValueError("min_share must be in [0, 1)")

    def _fit_counts(self, C: np.ndarray, universe: list[str], ties: list[str | None]):
        n = C.shape[0]
        winner, status, reason, conf = _blank(n)
        tot = C.sum(axis=1)
        C2 = np.where(C >= self.min_votes_per_label, C, 0)
        tot2 = C2.sum(axis=1)
        mx = C2.max(axis=1) if C2.shape[1] else np.zeros(n, int)
        arg = C2.argmax(axis=1) if C2.shape[1] else np.zeros(n, int)
        n_at_max = (C2 == mx[:, None]).sum(axis=1)
        k = self.min_votes_per_label
        for r in range(n):
            if tot[r] == 0:
                continue
            removed = tot[r] - tot2[r]
            noise = f"; {removed} vote(s) below min_votes_per_label={k} removed as noise" if removed else ""
            status[r] = UNRESOLVED
            if tot2[r] == 0:
                reason[r] = f"all {tot[r]} vote(s) below min_votes_per_label={k}"
                continue
            share = mx[r] / tot2[r]
            if n_at_max[r] > 1:
                tied = [universe[j] for j in np.flatnonzero(C2[r] == mx[r])]
                reason[r] = f"tie between {', '.join(tied)} ({mx[r]} votes each of {tot2[r]}){noise}"
                continue
            if share <= self.min_share:
                reason[r] = (f"top label {universe[arg[r]]} has {mx[r]}/{tot2[r]} votes ({_fmt_share(share)}), "
                             f"not more than min_share={self.min_share:g}{noise}")
                continue
            winner[r], status[r], conf[r] = universe[arg[r]], RESOLVED, share
            reason[r] = f"majority: {universe[arg[r]]} with {mx[r]}/{tot2[r]} votes ({_fmt_share(share)}){noise}"
        return winner, status, reason, conf


@register("plurality")
@dataclass
class Plurality(Aggregator):
    """Most votes wins; a tie is broken by the emotion word of the task's search query when it is
    one of the tied labels (AffectNet+ Supplement II), else the task is unresolved."""

    tie_break: Literal["query", "none"] = "query"
    name: ClassVar[str] = "plurality"

    def _fit_counts(self, C: np.ndarray, universe: list[str], ties: list[str | None]):
        n = C.shape[0]
        winner, status, reason, conf = _blank(n)
        tot = C.sum(axis=1)
        mx = C.max(axis=1) if C.shape[1] else np.zeros(n, int)
        for r in range(n):
            if tot[r] == 0:
                continue
            tied = [universe[j] for j in np.flatnonzero(C[r] == mx[r])]
            share = mx[r] / tot[r]
            if len(tied) == 1:
                winner[r], status[r], conf[r] = tied[0], RESOLVED, share
                reason[r] = f"plurality: {tied[0]} with {mx[r]}/{tot[r]} votes ({_fmt_share(share)})"
                continue
            q = ties[r]
            if self.tie_break == "query" and q is not None and q in tied:
                winner[r], status[r], conf[r] = q, RESOLVED, share
                reason[r] = f"tie between {', '.join(tied)} ({mx[r]} votes each) broken by the query emotion {q}"
            else:
                status[r] = UNRESOLVED
                why = ("tie-break disabled" if self.tie_break != "query" else
                       "no query emotion" if q is None else f"query emotion {q} is not among them")
                reason[r] = f"tie between {', '.join(tied)} ({mx[r]} votes each); {why}"
        return winner, status, reason, conf


@dataclass
class CrowdKit(Aggregator):
    """A crowd-kit annotator model: DawidSkene (Dawid & Skene 1979), OneCoinDawidSkene, GLAD,
    MajorityVote. Annotator estimates (confusion matrices, priors, skills) go to ``estimates_``."""

    method: Literal["DawidSkene", "OneCoinDawidSkene", "GLAD", "MajorityVote"] = "DawidSkene"
    n_iter: int = 100
    tol: float = 1e-5

    def describe(self) -> str:
        return f"{self.method}(n_iter={self.n_iter}, tol={self.tol})"

    def fit(self, votes: pd.DataFrame, *, tasks: Sequence[str] | None = None,
            labels: Sequence[str] | None = None, tie_labels: Mapping[str, str | None] | None = None,
            level: str | None = None) -> "CrowdKit":
        from crowdkit import aggregation as ca

        tasks_idx = pd.Index(pd.unique(votes["task"].astype(str)) if tasks is None else [str(t) for t in tasks])
        universe = list(labels) if labels is not None else sorted(pd.unique(votes["label"].astype(str)))
        C = _count_matrix(votes["task"].astype(str), votes["label"].astype(str), tasks_idx, universe)
        winner, status, reason, conf = _blank(len(tasks_idx))
        est = empty_estimates()
        probas = np.full(C.shape, np.nan)
        if len(votes):
            data = pd.DataFrame({"worker": votes["worker"].astype(str).to_numpy(),
                                 "task": votes["task"].astype(str).to_numpy(),
                                 "label": votes["label"].astype(str).to_numpy()})
            cls = getattr(ca, self.method)
            with warnings.catch_warnings():  # crowd-kit 1.4 uses pandas idioms pandas 3 deprecates
                warnings.simplefilter("ignore", category=FutureWarning)
                warnings.simplefilter("ignore", category=DeprecationWarning)
                if hasattr(pd.errors, "Pandas4Warning"):
                    warnings.simplefilter("ignore", category=pd.errors.Pandas4Warning)
                model = cls() if self.method == "MajorityVote" else cls(n_iter=self.n_iter, tol=self.tol)
                model.fit(data)
                post = getattr(model, "probas_", None)
                if post is None and self.method == "MajorityVote":
                    post = model.fit_predict_proba(data)
            pos = {t: r for r, t in enumerate(tasks_idx)}
            for task, lab in model.labels_.items():
                r = pos[str(task)]
                p = float(post.loc[task, lab]) if post is not None and lab in post.columns else np.nan
                winner[r], status[r], conf[r] = str(lab), RESOLVED, p
                reason[r] = f"{self.method}: {lab}" + (f" (posterior {p:.2f})" if not np.isnan(p) else "")
            if post is not None:
                post = post.reindex(index=tasks_idx, columns=universe)
                probas = post.to_numpy(dtype="float64")
            est = _estimates(model, self.method, level)
        self._set(tasks_idx, universe, C, winner, status, reason, conf, est, probas)
        return self


def _estimates(model: Any, method: str, level: str | None) -> pd.DataFrame:
    """The annotator estimates of a fitted crowd-kit model, long format."""
    rows = []
    if hasattr(model, "errors_") and isinstance(model.errors_, pd.DataFrame):
        e = model.errors_.stack()
        e.index.names = ["annotator_id", "observed_label", "true_label"]
        e = e.rename("value").reset_index()
        e["kind"] = "confusion"
        rows.append(e)
    if isinstance(getattr(model, "priors_", None), pd.Series):
        p = model.priors_.rename("value").rename_axis("true_label").reset_index()
        p["kind"], p["annotator_id"], p["observed_label"] = "prior", None, None
        rows.append(p)
    skills = getattr(model, "skills_", None)
    if skills is None:
        skills = getattr(model, "alphas_", None)
    if isinstance(skills, pd.Series):
        s = skills.rename("value").rename_axis("annotator_id").reset_index()
        s["kind"], s["true_label"], s["observed_label"] = "skill", None, None
        rows.append(s)
    if not rows:
        return empty_estimates()
    est = pd.concat(rows, ignore_index=True)
    est["method"], est["level"] = method, level
    est = est[list(ESTIMATE_COLUMNS)]
    est["value"] = est["value"].astype("float64")
    return est


for _name, _method in (("dawid_skene", "DawidSkene"), ("one_coin_dawid_skene", "OneCoinDawidSkene"),
                       ("glad", "GLAD"), ("majority_vote", "MajorityVote")):
    register(_name, method=_method)(CrowdKit)


def DawidSkene(n_iter: int = 100, tol: float = 1e-5) -> CrowdKit:  # noqa: N802 - reads like the method
    return CrowdKit("DawidSkene", n_iter, tol)
