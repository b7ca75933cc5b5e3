"""Deployment YAML and workspace file -> typed, validated settings (SPEC R2, R7.1).

Every bad value is one ConfigError naming the field and what is allowed.

- `_settings`: the frozen dataclasses both files become
- `_fields`: checks every settings file shares (keys, booleans, URIs, durations)
- `_deployment`: a deployment file in the source platform's shape (load_deployment,
  make_deployment, the pipeline block, the model folder)
- `_workspace`: the workspace folder and the datastores its file defines, each checked
  by its row of the datastore table (modeltap.storage.registry)
"""

from modeltap.config._deployment import (
    ENV_COLLECT_MODEL_DATA,
    MODEL_TYPES,
    load_deployment,
    make_deployment,
)

# Private names other layers import from here (redundant aliases re-export them):
# runtime.configure merges pipeline keywords with _pipeline; the monitor checks its spec
# files with _check_keys and _mapping.
from modeltap.config._deployment import _pipeline as _pipeline
from modeltap.config._fields import _check_keys as _check_keys
from modeltap.config._fields import _mapping as _mapping
from modeltap.config._fields import (
    iso_duration,
    parse_bool,
    parse_datastore_uri,
    parse_retention,
    parse_sampling_rate,
)
from modeltap.config._settings import (
    DEFAULT_DATASTORE,
    PAYLOAD_COLLECTIONS,
    CollectionSettings,
    DatastoreSettings,
    DeploymentSettings,
    PipelineSettings,
    WorkspaceSettings,
)
from modeltap.config._workspace import (
    DEFAULT_WORKSPACE,
    ENV_WORKSPACE,
    default_workspace,
    load_workspace,
)

__all__ = [
    "DEFAULT_DATASTORE",
    "DEFAULT_WORKSPACE",
    "ENV_COLLECT_MODEL_DATA",
    "ENV_WORKSPACE",
    "MODEL_TYPES",
    "PAYLOAD_COLLECTIONS",
    "CollectionSettings",
    "DatastoreSettings",
    "DeploymentSettings",
    "PipelineSettings",
    "WorkspaceSettings",
    "default_workspace",
    "iso_duration",
    "load_deployment",
    "load_workspace",
    "make_deployment",
    "parse_bool",
    "parse_datastore_uri",
    "parse_retention",
    "parse_sampling_rate",
]
