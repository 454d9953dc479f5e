"""ray.dag: lazy task graphs (Ray's DAG API). `f.bind(...)`, `Actor.bind(...)` and
`actor_node.method.bind(...)` build nodes instead of submitting; `execute(...)` submits
the whole graph, each node once, and returns the root's refs (or actor handle).

    with InputNode() as inp:            FunctionNode(f, args=(inp[0], ClassMethodNode(...)))
        dag = f.bind(inp[0], a.m.bind(inp.x))          │ execute(*args, **kwargs)
    dag.execute(1, x=2) ──► apply_recursive: children first, each node once (by its stable
                            uuid) ──► a copy of the node whose child nodes are replaced by
                            their results ──► its _execute_impl: f.remote(...), ...

Arguments may hold nodes inside lists, tuples, sets and dicts; they are found and
replaced there too. A ref a node returns is passed on as a ref, so the graph runs as
chained tasks, with no get() in between. A method call bound on a ClassNode names the
actor node and the call bound before it on that actor (other_args_to_resolve), so calls
on one actor run in the order they were bound.
"""

from __future__ import annotations

import uuid

from mpiray.dag.format import node_text

PARENT_CLASS_NODE_KEY = "parent_class_node"
PREV_CLASS_METHOD_CALL_KEY = "prev_class_method_call"


class DAGNode:
    """A node of a lazy graph: what it calls, with what arguments (nodes among them),
    options, and other values to resolve before it runs (a method call's actor)."""

    def __init__(self, args=(), kwargs=None, options=None, other_args_to_resolve=None):
        self._bound_args = tuple(args or ())
        self._bound_kwargs = dict(kwargs or {})
        self._bound_options = dict(options or {})
        self._bound_other_args_to_resolve = dict(other_args_to_resolve or {})
        self._stable_uuid = uuid.uuid4().hex   # kept by every copy of this node

    # ---------------------------------------------------------------- what it holds
    def get_args(self):
        return self._bound_args

    def get_kwargs(self):
        return dict(self._bound_kwargs)

    def get_options(self):
        return dict(self._bound_options)

    def get_other_args_to_resolve(self):
        return dict(self._bound_other_args_to_resolve)

    def get_stable_uuid(self) -> str:
        return self._stable_uuid

    def options(self, **options):
        """A copy of this node (the same node of the graph) with these options too."""
        return self._copy(self._bound_args, self._bound_kwargs,
                          {**self._bound_options, **options}, self._bound_other_args_to_resolve)

    # ---------------------------------------------------------------- running it
    def execute(self, *args, **kwargs):
        """Submits the graph below this node with these inputs (for its InputNode)."""
        return self.apply_recursive(lambda node: node._execute_impl(*args, **kwargs))

    def _execute_impl(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} cannot be executed")

    # ---------------------------------------------------------------- walking the graph
    def _get_toplevel_child_nodes(self) -> list:
        """The nodes among the arguments themselves (not inside containers), in order."""
        found = []
        for value in (*self._bound_args, *self._bound_kwargs.values(),
                      *self._bound_other_args_to_resolve.values()):
            if isinstance(value, DAGNode) and not _holds(found, value):
                found.append(value)
        return found

    def _get_all_child_nodes(self) -> list:
        """Every node the arguments hold, however deep inside containers, in order."""
        found = []
        for node in _nodes_in(self._fields()):
            if not _holds(found, node):
                found.append(node)
        return found

    def _apply_and_replace_all_child_nodes(self, fn):
        """A copy of this node whose child nodes are replaced by fn(child), fn applied
        once per child (shallow: apply_recursive walks the whole graph)."""
        table = {}
        for node in _nodes_in(self._fields()):
            if id(node) not in table:
                table[id(node)] = fn(node)
        args, kwargs, others = _replaced(self._fields(), table)
        return self._copy(args, kwargs, self._bound_options, others)

    def apply_recursive(self, fn):
        """fn applied to every node of the graph below this one, children first, each
        node (by its stable uuid) once; what it gives this node. fn sees a copy of each
        node whose children are replaced by what fn gave them. Walked with a stack, so
        a chain of thousands of nodes does not recurse."""
        done, input_node = {}, [None]

        def apply(node):
            if isinstance(node, InputNode):
                if input_node[0] is None:
                    input_node[0] = node._stable_uuid
                elif input_node[0] != node._stable_uuid:
                    raise AssertionError("Each DAG should only have one unique InputNode.")
            done[node._stable_uuid] = fn(node._apply_and_replace_all_child_nodes(
                lambda child: done[child._stable_uuid]))

        stack = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if node._stable_uuid in done:
                continue
            if children_done:
                apply(node)
                continue
            stack.append((node, True))
            for child in reversed(node._get_all_child_nodes()):
                if child._stable_uuid not in done:
                    stack.append((child, False))
        return done[self._stable_uuid]

    def apply_functional(self, source_input_list, predictate_fn, apply_fn):
        """source_input_list with every node in it that predictate_fn accepts replaced by
        apply_fn(node); the nodes themselves are left as they are."""
        table = {}
        for node in _nodes_in(source_input_list):
            if id(node) not in table and predictate_fn(node):
                table[id(node)] = apply_fn(node)
        return _replaced(source_input_list, table)

    def _fields(self):
        return [self._bound_args, self._bound_kwargs, self._bound_other_args_to_resolve]

    def _copy(self, args, kwargs, options, other_args_to_resolve):
        node = object.__new__(type(self))
        node.__dict__.update(self.__dict__)
        node._bound_args = tuple(args)
        node._bound_kwargs = dict(kwargs)
        node._bound_options = dict(options)
        node._bound_other_args_to_resolve = dict(other_args_to_resolve)
        return node

    # ---------------------------------------------------------------- as Ray's
    def __copy__(self):
        return self._copy(self._bound_args, self._bound_kwargs, self._bound_options,
                          self._bound_other_args_to_resolve)

    def __reduce__(self):
        raise ValueError(f"DAGNode cannot be serialized. DAGNode: {self}")

    def __str__(self):
        return node_text(self)

    def __getattr__(self, name):
        if name == "bind":
            raise AttributeError(f".bind() cannot be used again on {type(self)} ")
        if name == "remote":
            raise AttributeError(f".remote() cannot be used on {type(self)}. To execute the "
                                 "task graph for this node, use .execute().")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _holds(nodes, node) -> bool:
    return any(n is node for n in nodes)


def _nodes_in(value):
    """The nodes in value, in order (inside lists, tuples, sets and dicts, keys too)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, DAGNode):
            yield v
        elif isinstance(v, dict):
            stack.extend(reversed([x for kv in v.items() for x in kv]))
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(reversed(list(v)))


def _replaced(value, table):
    """value with each node whose id is in table replaced by table[id] (containers are
    copied where they hold one; everything else is kept as it is)."""
    if isinstance(value, DAGNode):
        return table.get(id(value), value)
    if isinstance(value, dict):
        return {_replaced(k, table): _replaced(v, table) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, table) for v in value]
    if isinstance(value, tuple):
        items = [_replaced(v, table) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, (set, frozenset)):
        return type(value)(_replaced(v, table) for v in value)
    return value


class FunctionNode(DAGNode):
    """A task to submit when the graph runs."""

    def __init__(self, func_body, func_args, func_kwargs, func_options=None, other_args_to_resolve=None):
        super().__init__(func_args, func_kwargs, func_options, other_args_to_resolve)
        self._body = func_body

    def _execute_impl(self, *args, **kwargs):
        body = self._body.options(**self._bound_options) if self._bound_options else self._body
        return body.remote(*self._bound_args, **self._bound_kwargs)


class ClassNode(DAGNode):
    """An actor to create when the graph runs; `.method.bind(...)` makes its calls, each
    after the one bound before it (as Ray's: a1.inc.bind(2) runs before a later
    a1.get.bind() does, though nothing else in the graph reads it)."""

    def __init__(self, cls, cls_args, cls_kwargs, cls_options=None, other_args_to_resolve=None):
        super().__init__(cls_args, cls_kwargs, cls_options, other_args_to_resolve)
        if any(isinstance(n, InputNode) for n in _nodes_in(self._fields())):
            raise ValueError(
                "InputNode handles user dynamic input the the DAG, and cannot be used as args, "
                "kwargs, or other_args_to_resolve in ClassNode constructor because it is not "
                "available at class construction or binding time.")
        self._body = cls
        self._last_call = None

    def _execute_impl(self, *args, **kwargs):
        body = self._body.options(**self._bound_options) if self._bound_options else self._body
        return body.remote(*self._bound_args, **self._bound_kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "bind":
            raise AttributeError(f".bind() cannot be used again on {type(self)} ")
        getattr(self._body._cls, name)   # (a method the class lacks: AttributeError now, as Ray's)
        return _UnboundClassMethodNode(self, name, {})


class _UnboundClassMethodNode:
    def __init__(self, actor, method_name, options):
        self._actor, self._method_name, self._options = actor, method_name, dict(options)

    def options(self, **options):
        return _UnboundClassMethodNode(self._actor, self._method_name, {**self._options, **options})

    def __getattr__(self, name):
        if name == "remote":
            raise AttributeError(".remote() cannot be used on ClassMethodNodes. Use .bind() "
                                 "instead to express an symbolic actor method call.")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def bind(self, *args, **kwargs):
        node = ClassMethodNode(self._method_name, args, kwargs, self._options, {
            PARENT_CLASS_NODE_KEY: self._actor,
            PREV_CLASS_METHOD_CALL_KEY: self._actor._last_call})
        self._actor._last_call = node
        return node


class ClassMethodNode(DAGNode):
    """A call of an actor's method: on a ClassNode's actor (made once per execute, its
    handle in other_args_to_resolve when this runs) or on a live actor's method."""

    def __init__(self, method_name, method_args, method_kwargs, method_options=None,
                 other_args_to_resolve=None):
        super().__init__(method_args, method_kwargs, method_options, other_args_to_resolve)
        self._method_name = method_name

    def _execute_impl(self, *args, **kwargs):
        from mpiray.actor import ActorMethod

        parent = self._bound_other_args_to_resolve[PARENT_CLASS_NODE_KEY]
        method = parent if isinstance(parent, ActorMethod) else getattr(parent, self._method_name)
        if self._bound_options:
            method = method.options(**self._bound_options)
        return method.remote(*self._bound_args, **self._bound_kwargs)


class DAGInputData:
    """What an InputNode stands for when execute() was given several inputs: inp[i] is
    the i-th positional one, inp["key"] (or inp.key) a keyword one."""

    def __init__(self, *args, **kwargs):
        self._args, self._kwargs = list(args), kwargs

    def __getitem__(self, key):
        if isinstance(key, int):
            if not -len(self._args) <= key < len(self._args):
                raise IndexError(f"the graph reads input {key}, but execute() was given "
                                 f"{len(self._args)} positional inputs")
            return self._args[key]
        if key not in self._kwargs:
            raise KeyError(f"the graph reads input {key!r}, which execute() was not given")
        return self._kwargs[key]


class InputNode(DAGNode):
    """The graph's input, used inside `with InputNode() as inp:` only: what execute() is
    given (one positional input itself, else a DAGInputData); `inp[i]` and `inp.key`
    pick one."""

    def __init__(self, *args, input_type=None, _other_args_to_resolve=None, **kwargs):
        if args or kwargs:
            raise ValueError("InputNode should not take any args or kwargs.")
        super().__init__((), {}, {}, _other_args_to_resolve)
        self.input_type = input_type
        self._in_context_manager = False

    def __enter__(self):
        self._in_context_manager = True
        return self

    def __exit__(self, *exc):
        return False

    def _execute_impl(self, *args, **kwargs):
        assert self._in_context_manager, (
            "InputNode is a singleton instance that should be only used in context manager "
            "for dag building and execution: `with InputNode() as inp: dag = f.bind(inp)`.")
        if len(args) == 1 and not kwargs:
            return args[0]
        return DAGInputData(*args, **kwargs)

    def __getitem__(self, key):
        assert isinstance(key, (str, int)), (
            "Please only use int index or str as first-level key to access fields of input "
            f"node, got {key!r}")
        return InputAttributeNode(self, key, "__getitem__")

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return InputAttributeNode(self, key, "__getattr__")


class InputAttributeNode(DAGNode):
    """One part of the input: inp[key] or inp.key (its InputNode resolved before it)."""

    def __init__(self, dag_input_node, key, accessor_method):
        super().__init__((), {}, {}, {"dag_input_node": dag_input_node, "key": key,
                                      "accessor_method": accessor_method})
        self._key, self._accessor_method = key, accessor_method

    def _execute_impl(self, *args, **kwargs):
        """As Ray's: with one positional input and no keywords, the key reads into that
        object (inp[0] of execute([2, 3]) is 2; inp.x its attribute x); else an int picks
        a positional input and a name a keyword one."""
        value = self._bound_other_args_to_resolve["dag_input_node"]
        if isinstance(value, DAGInputData):
            return value[self._key]
        if self._accessor_method == "__getattr__":
            return getattr(value, self._key)
        return value[self._key]


class MultiOutputNode(DAGNode):
    """Several outputs at once: execute() returns the list of their refs."""

    def __init__(self, args, other_args_to_resolve=None):
        if isinstance(args, tuple):
            args = list(args)
        if not isinstance(args, list):
            raise ValueError(f"Invalid input type for `args`, {type(args)}.")
        super().__init__(args, {}, {}, other_args_to_resolve)

    def _execute_impl(self, *args, **kwargs):
        return list(self._bound_args)


__all__ = ["ClassMethodNode", "ClassNode", "DAGInputData", "DAGNode", "FunctionNode",
           "InputAttributeNode", "InputNode", "MultiOutputNode", "PARENT_CLASS_NODE_KEY",
           "PREV_CLASS_METHOD_CALL_KEY"]
