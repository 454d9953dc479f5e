"""ray.dag: lazy task graphs (Ray's DAG API). `f.bind(...)`, `Actor.bind(...)` and
`actor_node.method.bind(...)` build nodes instead of submitting; `execute(...)` submits
the whole graph, each node once, and returns the root's refs (or actor handle).

    with InputNode() as inp:            FunctionNode(f, args=(inp[0], ClassMethodNode(...)))
        dag = f.bind(inp[0], a.m.bind(inp.x))          │ execute(*args, **kwargs)
    dag.execute(1, x=2) ──► resolve args, deepest first (memoized per execute) ──► f.remote(...)

Arguments may hold nodes inside lists, tuples and dicts; they are resolved there too.
A ref a node returns is passed on as a ref, so the graph runs as chained tasks, with no
get() in between.
"""

from __future__ import annotations


class DAGNode:
    """A node of a lazy graph: what it calls and with what (nodes among the arguments)."""

    def __init__(self, args=(), kwargs=None, options=None):
        self._bound_args = tuple(args)
        self._bound_kwargs = dict(kwargs or {})
        self._bound_options = dict(options or {})

    def execute(self, *args, **kwargs):
        """Submits the graph below this node with these inputs (for InputNode)."""
        return self._resolve(_Execution(args, kwargs))

    def _memo_key(self):
        return id(self)

    def _resolve(self, run):
        key = self._memo_key()
        done = run.results.get(key, run)
        if done is not run:
            return done
        args = run.resolve(self._bound_args)
        kwargs = run.resolve(self._bound_kwargs)
        result = self._execute_impl(args, kwargs, run)
        run.results[key] = result
        return result

    def _execute_impl(self, args, kwargs, run):
        raise NotImplementedError

    def options(self, **options):
        """A copy of this node with these options too (as .options() before .bind())."""
        import copy

        node = copy.copy(self)
        node._bound_options = {**self._bound_options, **options}
        return node

    def get_args(self):
        return self._bound_args

    def get_kwargs(self):
        return self._bound_kwargs

    def get_options(self):
        return self._bound_options


class _Execution:
    """One execute(): its inputs, and each node's result (a node runs once per execute)."""

    def __init__(self, args, kwargs):
        self.args, self.kwargs = args, kwargs
        self.results = {}

    def resolve(self, value):
        if isinstance(value, DAGNode):
            return value._resolve(self)
        if isinstance(value, (list, tuple)):
            items = [self.resolve(v) for v in value]
            return items if isinstance(value, list) else type(value)(items) \
                if not hasattr(value, "_fields") else type(value)(*items)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value


class _RemoteNode(DAGNode):
    """A node that calls .remote() of a remote function or actor class (with its options)."""

    def __init__(self, body, args, kwargs, options=None):
        super().__init__(args, kwargs, options)
        self._body = body

    def _execute_impl(self, args, kwargs, run):
        body = self._body.options(**self._bound_options) if self._bound_options else self._body
        return body.remote(*args, **kwargs)


class FunctionNode(_RemoteNode):
    """A task to submit when the graph runs."""


class ClassNode(_RemoteNode):
    """An actor to create when the graph runs; `.method.bind(...)` makes its calls, each
    after the one bound before it (as Ray's: a1.inc.bind(2) runs before a later
    a1.get.bind() does, though nothing else in the graph reads it)."""

    _last_call = None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _UnboundMethod(self, name)

    def options(self, **options):
        node = super().options(**options)
        node._last_call = None   # (another actor: its calls are its own)
        return node


class _UnboundMethod:
    def __init__(self, actor, name, options=None):
        self._actor, self._name, self._options = actor, name, dict(options or {})

    def options(self, **options):
        return _UnboundMethod(self._actor, self._name, {**self._options, **options})

    def bind(self, *args, **kwargs):
        node = ClassMethodNode(self._actor, self._name, args, kwargs, self._options)
        node._prev_call, self._actor._last_call = self._actor._last_call, node
        return node


class ClassMethodNode(DAGNode):
    """A call of an actor's method: on a ClassNode's actor (made once per execute), or
    a live actor's method itself (method_name None)."""

    _prev_call = None   # the call bound before this one on the same ClassNode

    def __init__(self, actor, method_name, args, kwargs, options=None):
        super().__init__(args, kwargs, options)
        self._actor, self._method_name = actor, method_name
        self._call = object()   # one call, whatever copies .options() makes of it

    def _memo_key(self):
        return id(self._call)

    def _execute_impl(self, args, kwargs, run):
        # the calls bound before this one go first, the earliest first (a loop: a long
        # chain of them must not recurse once per call)
        earlier, prev = [], self._prev_call
        while prev is not None and prev._memo_key() not in run.results:
            earlier.append(prev)
            prev = prev._prev_call
        for call in reversed(earlier):
            run.resolve(call)
        if self._method_name is None:
            method = self._actor
        else:
            method = getattr(run.resolve(self._actor), self._method_name)
        if self._bound_options:
            method = method.options(**self._bound_options)
        return method.remote(*args, **kwargs)


class InputNode(DAGNode):
    """The graph's input: what execute() is given (`inp` alone is its one positional
    argument; `inp[i]` and `inp.key` pick one)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _execute_impl(self, args, kwargs, run):
        if len(run.args) == 1 and not run.kwargs:
            return run.args[0]
        if not run.args and not run.kwargs:
            raise ValueError("execute() was given no input for the graph's InputNode")
        raise ValueError("an InputNode used as a whole takes exactly one positional input; "
                         "pick one with inp[i] or inp.key")

    def __getitem__(self, key):
        return InputAttributeNode(self, key, "item")

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return InputAttributeNode(self, key, "attr")


class InputAttributeNode(DAGNode):
    def __init__(self, input_node, key, how):
        super().__init__()
        self._key, self._how = key, how

    def _execute_impl(self, args, kwargs, run):
        """As Ray's: with one positional input and no keywords, the key reads into that
        object (inp[0] of execute([2, 3]) is 2; inp.x its attribute x); else an int picks
        a positional input and a name a keyword one."""
        key = self._key
        if len(run.args) == 1 and not run.kwargs:
            value = run.args[0]
            return getattr(value, key) if self._how == "attr" else value[key]
        if isinstance(key, int):
            if key >= len(run.args):
                raise ValueError(f"the graph reads input {key}, but execute() was given "
                                 f"{len(run.args)} positional inputs")
            return run.args[key]
        if key not in run.kwargs:
            raise ValueError(f"the graph reads input {key!r}, which execute() was not given")
        return run.kwargs[key]


class MultiOutputNode(DAGNode):
    """Several outputs at once: execute() returns the list of their refs."""

    def __init__(self, outputs, other_args_to_resolve=None):
        super().__init__((list(outputs),))

    def _execute_impl(self, args, kwargs, run):
        return list(args[0])


__all__ = ["ClassMethodNode", "ClassNode", "DAGNode", "FunctionNode", "InputAttributeNode",
           "InputNode", "MultiOutputNode"]
