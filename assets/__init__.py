"""Software-defined assets and asset checks (thin: they call ops/, models/ and warehouse/)."""

import warnings

try:  # partitioned asset checks are a Dagster "preview" feature: we use it knowingly
    from dagster import PreviewWarning

    warnings.filterwarnings("ignore", category=PreviewWarning)
except ImportError:  # pragma: no cover
    pass
