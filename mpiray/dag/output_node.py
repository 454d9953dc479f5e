"""ray.dag.output_node, where Ray's docs import MultiOutputNode from."""

from mpiray.dag import MultiOutputNode  # noqa: F401
