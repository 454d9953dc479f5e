"""ray.dag.input_node, where Ray's docs import InputNode, InputAttributeNode from."""

from mpiray.dag import DAGInputData, InputAttributeNode, InputNode  # noqa: F401
