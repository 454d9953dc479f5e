"""str() of a DAG node, as Ray prints one: its kind and uuid, then what it calls, its
arguments (nested nodes printed in place, indented), options and other values:

    (FunctionNode, 3f2a...)(
        body=add
        args=[
            1,
            (FunctionNode, 9c1b...)(
                ...
            )
        ]
        kwargs={ ... }
        options={ ... }
        other_args_to_resolve={ ... }
    )
"""

from __future__ import annotations

INDENT = "    "


def node_text(node, depth: int = 0) -> str:
    pad = INDENT * (depth + 1)
    lines = [f"({type(node).__name__}, {node.get_stable_uuid()})("]
    body = getattr(node, "_body", None) or getattr(node, "_method_name", None)
    if body is not None:
        lines.append(f"{pad}body={_name_of(body)}")
    for label, value in (("args", list(node.get_args())), ("kwargs", node.get_kwargs()),
                         ("options", node.get_options()),
                         ("other_args_to_resolve", node.get_other_args_to_resolve())):
        lines.append(f"{pad}{label}={_value_text(value, depth + 1)}")
    lines.append(f"{INDENT * depth})")
    return "\n".join(lines)


def _name_of(body) -> str:
    if isinstance(body, str):
        return body
    inner = getattr(body, "_function", None) or getattr(body, "_cls", None) or body
    return getattr(inner, "__name__", None) or repr(body)


def _value_text(value, depth: int) -> str:
    from mpiray.dag import DAGNode

    pad, end = INDENT * (depth + 1), INDENT * depth
    if isinstance(value, DAGNode):
        return node_text(value, depth)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [f"{pad}{_value_text(v, depth + 1)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{end}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{k}: {_value_text(v, depth + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + f"\n{end}}}"
    return repr(value)
