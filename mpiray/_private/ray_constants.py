"""ray._private.ray_constants: the constants Ray's docs and programs import from it."""

from mpiray._ids import OBJECT_ID_SIZE
from mpiray._options import DEFAULT_TASK_RETRIES

# A node's accelerator type is the resource "accelerator_type:<type>" (Ray's docs build
# the name from this prefix).
RESOURCE_CONSTRAINT_PREFIX = "accelerator_type:"
NODE_ID_PREFIX = "node:"
# Ray's default environment variable names and values that programs read.
RAY_ADDRESS_ENVIRONMENT_VARIABLE = "RAY_ADDRESS"
RAY_NAMESPACE_ENVIRONMENT_VARIABLE = "RAY_NAMESPACE"
RAY_RUNTIME_ENV_ENVIRONMENT_VARIABLE = "RAY_RUNTIME_ENV"
DEFAULT_ACTOR_MAX_RESTARTS = 0
DEFAULT_TASK_MAX_RETRIES = DEFAULT_TASK_RETRIES
ID_SIZE = OBJECT_ID_SIZE   # (mpiray's ids are 20 bytes: docs/api.md)
MB = 2**20
GB = 2**30
