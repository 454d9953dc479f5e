"""ray.dag.input_node, where Ray's docs import InputNode, InputAttributeNode from."""

from mpiray.dag import InputNode, InputAttributeNode  # noqa: F401
