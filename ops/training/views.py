"""SQL views over the baseline tables, laid out like the seed papers' tables (DuckDB SQL).

    findingemo_settings   per (task, extractor, loss, lr): mean ± sample std over runs of the test
                          accuracy, F1, W.F1 and AP (FindingEmo §3 reports mean and std over runs).
    findingemo_table5     FindingEmo Table 5: per (task, extractor) the best (loss, lr) setting, chosen
                          by mean W.F1 ("best performing models"), with its mean ± std.
    best_runs             per (family, task, extractor): the run with the best main metric (W.F1 for
                          classification, lowest W-MAE / MSE for regression).
    affectnet_table8      AffectNet+ Table 8: Hard-FER per subset: accuracy, average accuracy, F1.
    affectnet_table9      AffectNet+ Table 9: Hard-FER per subset and emotion: precision, recall, F1.
    affectnet_confusion   AffectNet+ Fig. 5: confusion counts per subset (true, predicted).
    affectnet_table10     AffectNet+ Table 10: Soft-FER W-MAE and W-FR per subset.
    affectnet_table11     AffectNet+ Table 11: Soft-FER W-MAE and W-FR per subset and emotion.
    deep_affect_folds     Deep Affect §3: MSE per fold (valence, arousal, overall) and the mean over folds.
    cage_table            CAGE Tables 6–7: precision, recall, F1 and MSE, MAE, RMSE, CCC per kind.
    circumplex            CAGE §3: per taxonomy and expression, mean and spread of valence and arousal
                          over the annotations that carry both (any dataset with both).
"""

from __future__ import annotations


def _overall(family: str) -> str:
    return (f"select r.*, m.split, m.subset, m.metric, m.class, m.value from training_runs r "
            f"join run_metrics m using (run_id) where r.family = '{family}' and r.status = 'ok'")


def training_views() -> dict[str, str]:
    fe = _overall("findingemo")
    an = _overall("affectnet_plus")
    return {
        "findingemo_settings": f"""
            with m as ({fe} and m.class is null and m.split = 'test')
            select task, extractor_id as extractor, loss, lr, count(distinct run_id) as n_runs,
                   avg(value) filter (where metric = 'weighted_f1') as wf1_mean,
                   stddev_samp(value) filter (where metric = 'weighted_f1') as wf1_std,
                   avg(value) filter (where metric = 'f1') as f1_mean,
                   stddev_samp(value) filter (where metric = 'f1') as f1_std,
                   avg(value) filter (where metric = 'accuracy') as acc_mean,
                   stddev_samp(value) filter (where metric = 'accuracy') as acc_std,
                   avg(value) filter (where metric = 'average_precision') as ap_mean,
                   stddev_samp(value) filter (where metric = 'average_precision') as ap_std
            from m group by all""",
        "findingemo_table5": """
            select * exclude (rk) from (
                select *, row_number() over (partition by task, extractor
                                             order by wf1_mean desc, loss, lr) as rk
                from findingemo_settings) where rk = 1
            order by task, wf1_mean desc""",
        "best_runs": """
            with main as (
                select r.family, r.task, r.extractor_id, r.run_id, r.model_version, r.loss, r.lr, r.seed,
                       m.metric, m.value,
                       case when m.metric in ('weighted_f1') then m.value else -m.value end as score
                from training_runs r join run_metrics m using (run_id)
                where r.status = 'ok' and m.class is null and coalesce(m.subset, 'All') = 'All'
                  and ((r.family in ('findingemo', 'affectnet_plus') and r.task <> 'soft_fer' and m.metric = 'weighted_f1')
                       or (r.task = 'soft_fer' and m.metric = 'w_mae')
                       or (r.family in ('deep_affect', 'cage') and r.task <> 'joint' and m.metric = 'mse')
                       or (r.family = 'cage' and r.task = 'joint' and m.metric = 'weighted_f1')))
            select * exclude (rk, score) from (
                select *, row_number() over (partition by family, task, extractor_id order by score desc, run_id) as rk
                from main) where rk = 1""",
        "affectnet_table8": f"""
            with m as ({an} and r.task = 'hard_fer' and m.class is null)
            select extractor_id as extractor, subset, count(distinct run_id) as n_runs,
                   avg(value) filter (where metric = 'n') as n_faces,
                   avg(value) filter (where metric = 'accuracy') as accuracy,
                   avg(value) filter (where metric = 'average_accuracy') as average_accuracy,
                   avg(value) filter (where metric = 'f1') as f1,
                   avg(value) filter (where metric = 'weighted_f1') as weighted_f1
            from m group by extractor_id, subset
            order by extractor, list_position(['All', 'Easy', 'Challenging', 'Difficult'], subset)""",
        "affectnet_table9": f"""
            with m as ({an} and r.task = 'hard_fer' and m.class is not null and m.metric in ('precision', 'recall', 'f1'))
            select extractor_id as extractor, subset, class as emotion,
                   avg(value) filter (where metric = 'precision') as precision,
                   avg(value) filter (where metric = 'recall') as recall,
                   avg(value) filter (where metric = 'f1') as f1
            from m group by all order by extractor, subset, emotion""",
        "affectnet_confusion": f"""
            with m as ({an} and r.task = 'hard_fer' and m.metric = 'confusion')
            select extractor_id as extractor, subset, split_part(class, '|', 1) as true_label,
                   split_part(class, '|', 2) as predicted_label, avg(value) as n
            from m group by all""",
        "affectnet_table10": f"""
            with m as ({an} and r.task = 'soft_fer' and m.class is null)
            select extractor_id as extractor, subset,
                   avg(value) filter (where metric = 'w_fr') as w_fr,
                   avg(value) filter (where metric = 'w_mae') as w_mae,
                   avg(value) filter (where metric = 'n') as n_faces
            from m group by extractor_id, subset
            order by extractor, list_position(['All', 'Easy', 'Challenging', 'Difficult'], subset)""",
        "affectnet_table11": f"""
            with m as ({an} and r.task = 'soft_fer' and m.class is not null)
            select extractor_id as extractor, subset, class as emotion,
                   avg(value) filter (where metric = 'w_fr') as w_fr,
                   avg(value) filter (where metric = 'w_mae') as w_mae
            from m group by all order by extractor, subset, emotion""",
        "deep_affect_folds": f"""
            with m as ({_overall('deep_affect')} and m.metric = 'mse')
            select extractor_id as feature_set, model_kind as architecture, seed,
                   coalesce(class, 'overall') as target, eval_split as fold, value as mse
            from m
            union all
            select extractor_id, model_kind, seed, coalesce(class, 'overall'), 'mean', avg(value)
            from m group by all""",
        "cage_table": f"""
            with m as ({_overall('cage')} and m.class is null)
            select extractor_id as extractor, task as kind, count(distinct run_id) as n_runs,
                   avg(value) filter (where metric = 'f1') as f1,
                   avg(value) filter (where metric = 'weighted_f1') as weighted_f1,
                   avg(value) filter (where metric = 'accuracy') as accuracy,
                   avg(value) filter (where metric = 'mse') as mse,
                   avg(value) filter (where metric = 'mae') as mae,
                   avg(value) filter (where metric = 'rmse') as rmse,
                   avg(value) filter (where metric = 'ccc') as ccc
            from m group by all""",
    }


def circumplex_view() -> dict[str, str]:
    """CAGE §3 on any annotations with an expression and both ratings (view over ``annotations``)."""
    return {"circumplex": """
        select taxonomy, coalesce(emotion8, emotion) as expression, count(*) as n,
               avg(valence) as valence_mean, stddev_samp(valence) as valence_std,
               avg(arousal) as arousal_mean, stddev_samp(arousal) as arousal_std,
               corr(valence, arousal) as va_correlation
        from annotations
        where valence is not null and arousal is not null and coalesce(emotion8, emotion) is not null
          and coalesce(keep, true)
        group by all order by taxonomy, expression"""}
