"""ray.dag.dag_node, where Ray's docs import DAGNode from."""

from mpiray.dag import DAGNode  # noqa: F401
