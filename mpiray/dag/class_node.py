"""ray.dag.class_node, where Ray's docs import ClassNode, ClassMethodNode from."""

from mpiray.dag import ClassNode, ClassMethodNode  # noqa: F401
