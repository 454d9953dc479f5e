"""@remote functions: f.remote(...) submits a task; f.options(...) changes one call."""

from __future__ import annotations

import inspect


from mpiray import _options, signature
from mpiray import api as _api
from mpiray.core import current
from mpiray.core.task_spec import STREAMING
from mpiray.serialization import check_function_size, dumps_function, raise_unpicklable


def is_generator_function(fn) -> bool:
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def _name_of(function) -> str:
    """The task's default name, as Ray's: the function's own name (a partial or callable
    object is named by what it wraps, or its class); get_task_function_name() gives the
    module-qualified one."""
    target = getattr(function, "func", function)   # (functools.partial)
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    return qual.rsplit(".", 1)[-1]


def wrap_returns(refs, n):
    """What .remote() returns for n (TaskSpec's num_returns) return refs."""
    if n == 1:
        return refs[0]
    if n == 0:
        return None
    if n == STREAMING:
        from mpiray.generators import ObjectRefGenerator

        return ObjectRefGenerator(refs[0])
    if n < 0:  # "dynamic": one ref, to the DynamicObjectRefGenerator
        return refs[0]
    return refs


def _remote_form(self, args=None, kwargs=None, **options):
    """Ray's older form of .remote(): arguments and options as keywords (the `_remote`
    of remote functions, actor classes and actor methods)."""
    target = self.options(**options) if options else self
    return target.remote(*(args or ()), **(kwargs or {}))


class RemoteFunction:
    def __init__(self, function, options: dict):
        if inspect.iscoroutinefunction(function):   # (Ray's check, and its words)
            raise ValueError(
                "'async def' should not be used for remote tasks. You can wrap the async "
                "function with `asyncio.run(f())`. See more at: "
                "https://docs.ray.io/en/latest/ray-core/actors/async_api.html")
        self._function = function
        self._raw_options = dict(options)
        self._default_options = self._raw_options   # (Ray's name for what @remote was given)
        self._arg_count, self._check_args = signature.checker(function)
        self._is_generator = is_generator_function(function)
        self._options = _options.deferred(_options.task_options, options, self._is_generator,
                                          getattr(function, "__qualname__", None))
        self._function_name = _name_of(function)   # (list_tasks' func_or_class_name)
        self._name = options.get("name") or self._function_name
        target = getattr(function, "func", function)
        # (Ray's function descriptor, which its errors name: module.qualified name)
        self._descriptor = (f"{getattr(target, '__module__', '')}."
                            f"{getattr(target, '__qualname__', None) or self._name}")
        self._blob = None
        self._exported = {}     # session -> function id in that session's store
        self.__name__ = getattr(function, "__name__", None) or self._name.rsplit(".", 1)[-1]
        self.__doc__ = function.__doc__
        self.__wrapped__ = function
        # Ray's __ray_invocation_decorator__: wraps each call, (args, kwargs) -> anything
        self._decorator = getattr(function, "__ray_invocation_decorator__", None)

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Remote functions cannot be called directly. Instead of running "
                        f"'{self.__name__}()', try '{self.__name__}.remote()'.")

    def remote(self, *args, **kwargs):
        if self._decorator is not None:
            return self._decorator(lambda a, k: self._submit(a, k, self._options, self._name))(
                args, kwargs)
        return self._submit(args, kwargs, self._options, self._name)

    _remote = _remote_form

    def options(self, **opts):
        _options.check_in_options(opts, "remote functions")
        merged = {**self._raw_options, **opts}
        checked = _options.deferred(_options.task_options, merged, self._is_generator,
                                    getattr(self._function, "__qualname__", None))
        name = opts.get("name") or self._name
        parent = self

        class _Bound:
            def remote(self, *args, **kwargs):
                if parent._decorator is not None:
                    return parent._decorator(lambda a, k: parent._submit(a, k, checked, name))(
                        args, kwargs)
                return parent._submit(args, kwargs, checked, name)

            def bind(self, *args, **kwargs):
                from mpiray.dag import FunctionNode

                return FunctionNode(parent, args, kwargs, merged)

        return _Bound()

    def bind(self, *args, **kwargs):
        """A node of a lazy graph (mpiray.dag): submitted by the graph's execute()."""
        from mpiray.dag import FunctionNode

        return FunctionNode(self, args, kwargs, self._raw_options)

    def _submit(self, args, kwargs, opts, name):
        if opts.__class__ is not dict:
            raise opts   # (options Ray refuses only now: _options.deferred)
        # (the exact-count case inline: this runs for every task submitted)
        if (kwargs or len(args) != self._arg_count) and self._check_args is not None:
            self._check_args(args, kwargs)
        rt = _api._runtime()
        fid = self._exported.get(rt.session)
        if fid is None:
            if self._blob is None:
                try:
                    self._blob = dumps_function(self._function)
                except Exception as exc:  # noqa: BLE001
                    # (Ray's words: "the function <module>.<name>")
                    raise_unpicklable(f"the function {self._descriptor}", self._function, exc)
                check_function_size(self._blob, "remote function",
                                    f"{getattr(self._function, '__module__', '')}.{self._name}")
            fid = self._exported[rt.session] = rt.export(self._blob)
        refs = rt.submit_task(fid, name, args, kwargs, opts, self._descriptor,
                              None if name == self._function_name else self._function_name)
        n = opts["num_returns"]
        return refs[0] if n == 1 else wrap_returns(refs, n)

    def __getstate__(self):
        return {"function": self._function, "options": self._raw_options}

    def __setstate__(self, state):
        self.__init__(state["function"], state["options"])


__all__ = ["RemoteFunction", "current"]
