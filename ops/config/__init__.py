"""The YAML configuration: one schema module per domain, a loader that names file and key on error.

    base.py         strict, frozen sections; ConfigError
    acquisition.py  keyword sets, providers, candidate filters, download limits
    dedup.py        pHash mode, near-duplicate threshold, bands
    annotations.py  sources, grading, merge policy, queue
    models.py       backbones and features, the keep/reject and Emo8 predictors
    faces.py        faces and their metadata, AffectNet+ soft labels
    training.py     dataset splits and the seed papers' baselines
    release.py      dataset releases and their export formats
    schema.py       the whole file (EmoforgeConfig) and its loader

The configuration objects stay here: ops packages take plain parameters, and the ``to_*`` helpers of
the sections (or the assets) convert.
"""

from ops.config.acquisition import (  # noqa: F401
    DEFAULT_BLACKLIST, AcquisitionConfig, DdgsProvider, DemoProvider, DownloadConfig, KeywordSets,
    ProviderConfig, UrlListProvider,
)
from ops.config.annotations import (  # noqa: F401
    AnnotationSource, AnnotationsConfig, GoldImage, GradingConfig, MergeConfig, QueueConfig,
)
from ops.config.base import ConfigError  # noqa: F401
from ops.config.dedup import DedupConfig  # noqa: F401
from ops.config.faces import FacesConfig, SoftLabelsConfig  # noqa: F401
from ops.config.models import BackboneConfig, HeadConfig, ModelsConfig  # noqa: F401
from ops.config.training import (  # noqa: F401
    AffectNetBaselinesConfig, CageConfig, DeepAffectConfig, FindingEmoBaselinesConfig, PredictionsConfig,
    SplitsConfig, TrainingConfig,
)
from ops.config.release import ReleaseConfig  # noqa: F401
from ops.config.schema import EmoforgeConfig, config_to_yaml, load_config, parse_config  # noqa: F401
