"""ray.dag.function_node, where Ray's docs import FunctionNode from."""

from mpiray.dag import FunctionNode  # noqa: F401
