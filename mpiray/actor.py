"""Actors: @remote classes, their handles, and method calls.

    Cls.remote(args) ──► actor queue (created here) + spec in the store ──► CREATE_ACTOR
    handle.m.remote(args) ──► TaskSpec straight onto the actor's queue ──► its process
    handle pickled into a task or another actor ──► same actor id, queue attached there

A handle is counted like an ObjectRef (key: the actor id with a reserved index); when
no handle remains anywhere, an unnamed, non-detached actor ends after its queued calls.
"""

from __future__ import annotations

import collections
import inspect
import os
import types
import typing
import warnings

import cloudpickle

from mpiray import _ids, _options, signature
from mpiray.ids import ActorID
from mpiray import api as _api
from mpiray.core import actor_spec as A
from mpiray.core import context, current, labels, names, placement, refcount, serialization_context
from mpiray.core import protocol as P
from mpiray.core.actor_spec import BUILT_IN_METHODS
from mpiray.core.executor import AsyncActorExit, SyncActorExit
from mpiray.core import runtime_env
from mpiray.core.task_spec import ACTOR_CREATION, GROUP_SEP, STREAMING, TaskSpec
from mpiray.exceptions import ActorClassInheritanceException  # noqa: F401 - Ray's ray.actor has it
from mpiray.remote_function import _remote_form, is_generator_function, wrap_returns
from mpiray.serialization import check_function_size, dumps_function, raise_unpicklable


_METHOD_OPTIONS = frozenset(("num_returns", "concurrency_group", "max_task_retries",
                             "retry_exceptions", "_generator_backpressure_num_objects",
                             "enable_task_events", "tensor_transport"))


def method(*args, **kwargs):
    """@mpiray.method(num_returns=n, concurrency_group=, max_task_retries=,
    retry_exceptions=) on an actor method (n: a count, "streaming" or "dynamic")."""
    unknown = set(kwargs) - _METHOD_OPTIONS
    if unknown:   # (as Ray's assert on them)
        raise ValueError(f"Unexpected keyword argument(s) to @ray.method: {', '.join(sorted(unknown))}; "
                         f"valid ones are {', '.join(sorted(_METHOD_OPTIONS))}")

    def decorate(fn):
        if "num_returns" in kwargs:
            count = kwargs["num_returns"]
            if isinstance(count, int) and not isinstance(count, bool) and count < 0:
                raise ValueError(f"num_returns must be >= 0, got {count}")   # (Ray's words)
            fn.__mpiray_num_returns__ = _options.num_returns_option(
                count, is_generator=is_generator_function(fn))
        if kwargs.get("concurrency_group") is not None:
            fn.__mpiray_concurrency_group__ = kwargs["concurrency_group"]
        if "max_task_retries" in kwargs or "retry_exceptions" in kwargs:
            retries = kwargs.get("max_task_retries")
            rx = _options.retry_exceptions_option(kwargs.get("retry_exceptions", False))
            # (exception classes as cloudpickle bytes: the method table travels in specs
            # and name registrations that plain pickle writes, and the user's classes
            # are not importable where they are read)
            fn.__mpiray_retries__ = (
                -1 if retries is None else _options.max_task_retries_option(retries),
                rx if isinstance(rx, bool) else cloudpickle.dumps(rx))
        return fn

    if args and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def exit_actor():
    """Ends the current actor after this call; its callers then get RayActorError."""
    from mpiray.core import context

    proc = context.process()
    if proc.get("actor_id") is None:
        raise TypeError("exit_actor API is called on a non-actor worker: exit_actor() can "
                        "only be called inside an actor")
    proc["exit_requested"]()   # (ends it after this call even if the exception is caught)
    proc["exit_call"] = context.task_id()   # (whose answer is the exit, whatever it returns)
    raise AsyncActorExit() if proc.get("actor_is_async") else SyncActorExit()


class ActorClass:
    __class_getitem__ = classmethod(types.GenericAlias)   # ActorClass[T], as Ray's generics

    def __init__(self, cls, options: dict):
        self._cls = cls
        self._raw_options = dict(options)
        self._default_options = self._raw_options   # (Ray's name for what @remote was given)
        self._checked = _options.deferred(_options.actor_options, options, cls.__qualname__)
        self._methods = _method_table(cls)
        self._method_groups = {}   # the groups' names -> method -> group
        self._arg_count, self._check_args = signature.checker(cls)   # (its constructor's)
        self._is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                             for m in _public_functions(cls).values())
        self._blob = None
        self._exported = {}
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__   # (as Ray's: the user's class's, for pickle and docs)
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actors cannot be instantiated directly. Instead of "
                        f"'{self.__name__}()', use '{self.__name__}.remote()'.")

    def __mro_entries__(self, bases):   # `class B(SomeActor)`: said clearly, as Ray does
        from mpiray.exceptions import ActorClassInheritanceException

        raise ActorClassInheritanceException(
            f"Inheriting from actor classes is not currently supported ({self.__name__} is "
            "one). You can instead inherit from a non-actor base class and make the derived "
            "class an actor class (with @remote).")

    def __getattr__(self, name):
        """The class's own attributes (constants, static and class methods), as Ray's
        ActorClass, a subclass of the user's class, has them."""
        if name.startswith("__") or name in ("_cls",):
            raise AttributeError(name)
        try:
            return getattr(self.__dict__["_cls"], name)
        except (KeyError, AttributeError):
            raise AttributeError(f"'ActorClass({self.__dict__.get('__name__', '?')})' object has "
                                 f"no attribute {name!r}") from None

    def __dir__(self):
        """The class's attributes and options/remote/bind, as Ray's (a subclass of the
        user's class) lists them: what an editor completes."""
        return sorted(set(dir(type(self))) | set(dir(self.__dict__["_cls"])))

    def remote(self, *args, **kwargs):
        return self._create(args, kwargs, self._checked)

    def get_or_create(self, *args, **kwargs):
        """The named actor (@remote(name=...)) if it exists (args ignored), else made."""
        return self.options(get_if_exists=True).remote(*args, **kwargs)

    def __repr__(self):   # (Ray's actor classes are named ActorClass(<class>))
        return f"<{self._cls.__module__}.ActorClass({self._cls.__name__}) object at {hex(id(self))}>"

    _remote = _remote_form

    def options(self, **opts):
        _options.check_in_options(opts, "actors")
        checked = _options.deferred(_options.actor_options, {**self._raw_options, **opts},
                                    self._cls.__qualname__)
        parent = self

        class _Bound:
            def remote(self, *args, **kwargs):
                return parent._create(args, kwargs, checked)

            def get_or_create(self, *args, **kwargs):
                """The named actor if it exists (args ignored), else made with args."""
                return parent.options(**opts, get_if_exists=True).remote(*args, **kwargs)

            def bind(self, *args, **kwargs):
                from mpiray.dag import ClassNode

                return ClassNode(parent, args, kwargs, {**parent._raw_options, **opts})

        return _Bound()

    def bind(self, *args, **kwargs):
        """An actor to create when a lazy graph (mpiray.dag) runs."""
        from mpiray.dag import ClassNode

        return ClassNode(self, args, kwargs, self._raw_options)

    def _create(self, args, kwargs, opts):
        from mpiray.api import _namespace, _runtime

        if opts.__class__ is not dict:
            raise opts   # (options Ray refuses only now: _options.deferred)
        if opts["object_store_memory"] is not None:   # (Ray's warning, at each creation)
            warnings.warn("Setting 'object_store_memory' for actors is deprecated since it "
                          "doesn't actually reserve the required object store memory. Use "
                          "object spilling that's enabled by default instead to bypass the "
                          "object store memory size limitation.", DeprecationWarning, stacklevel=3)

        _options.check_out_of_order(opts["out_of_order"], self._is_async,
                                    opts["max_concurrency"] or (1000 if self._is_async else 1))
        rt = _runtime()
        namespace = _namespace(opts["namespace"])
        if opts["name"]:
            existing = _find_named(rt, opts["name"], namespace)
            if existing is not None:
                if opts["get_if_exists"]:
                    return existing   # (as in Ray, before the arguments are looked at)
                raise ValueError(f"The name {opts['name']!r} (namespace {namespace!r}) is "
                                 "already taken by another actor. Please use a different name.")
        if (kwargs or len(args) != self._arg_count) and self._check_args is not None:
            self._check_args(args, kwargs)
        fid = self._exported.get(rt.session)
        if fid is None:
            if self._blob is None:
                try:
                    self._blob = dumps_function(self._cls)
                except Exception as exc:  # noqa: BLE001
                    raise_unpicklable(f"the actor class {self._cls.__module__}."
                                      f"{self._cls.__qualname__}.__init__", self._cls, exc)
                check_function_size(self._blob, "actor", self.__name__)
            fid = self._exported[rt.session] = rt.export(self._blob)
        actor_id = _ids.new_id()
        blob, deps, contained, holder = rt.pack_args(
            args, kwargs, f"{self._cls.__module__}.{self._cls.__qualname__}.__init__")
        creation = TaskSpec(task_id=_ids.new_id(), kind=ACTOR_CREATION, function_id=fid,
                            name=f"{self.__name__}.__init__", args=blob, deps=deps,
                            contained=contained, actor_id=actor_id, num_returns=0,
                            depth=context.task_depth() + 1, parent=context.task_id(),
                            runtime_env=runtime_env.merge(rt.inherited_env, opts["runtime_env"]))
        concurrency = opts["max_concurrency"] or (1000 if self._is_async else 1)
        groups = opts["concurrency_groups"]
        key = tuple(sorted(groups))
        method_groups = self._method_groups.get(key)
        if method_groups is None:   # (once per set of groups: it walks the class)
            method_groups = self._method_groups[key] = _method_groups(self._cls, groups)
        held, to_place = opts["resources"], opts["placement"]
        if opts["labels"] is not None:
            where = labels.mark(opts["labels"])
            held, to_place = dict(held, **where), dict(to_place, **where)
        if opts["capturable"] and not rt.is_driver:
            parent = context.resources()
            held = placement.captured(held, parent)
            to_place = _options.captured(to_place, opts["placement"], parent, self.__name__)
        aspec = A.ActorSpec(
            actor_id=actor_id, class_name=self.__name__, creation=creation,
            placement=to_place, resources=held,
            max_restarts=opts["max_restarts"], max_task_retries=opts["max_task_retries"],
            max_concurrency=concurrency, is_async=self._is_async, name=opts["name"],
            namespace=namespace, detached=_detached(opts["lifetime"]), methods=self._methods,
            concurrency_groups=groups, method_groups=method_groups,
            owner_pid=0 if rt.is_driver else os.getpid(), out_of_order=bool(opts["out_of_order"]),
        )
        handle = ActorHandle(actor_id, self.__name__, self._methods, opts["max_pending_calls"],
                             A.runs_in_order(aspec), fails_fast=A.fails_fast(aspec))
        from mpiray.core.native import Queue
        from mpiray.core.node import ACTOR_QUEUE_SLOTS, ACTOR_SLOT_SIZE

        # The queue exists before the name is claimed: whoever finds the name (another
        # task's get_if_exists) can queue calls at once; they wait there for the actor.
        queue = rt.actor_queues[actor_id] = Queue.create(
            names.actor_queue_name(rt.session, actor_id), ACTOR_QUEUE_SLOTS, ACTOR_SLOT_SIZE,
            A.queue_consumers(aspec))
        rt.store.put(A.spec_key(actor_id), P.dumps(aspec))
        failure = None
        try:
            claimed = not opts["name"] or _register_name(rt, aspec, handle)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once undone
            claimed, failure = False, exc
        if not claimed:   # (taken, or the registry failed: undone either way)
            del rt.actor_queues[actor_id]
            queue.destroy()
            rt.store.delete(A.spec_key(actor_id))
            if failure is not None:
                raise failure
            if opts["get_if_exists"]:
                return _find_named(rt, opts["name"], namespace)
            raise ValueError(f"The name {opts['name']!r} is already taken by another actor. "
                             "Please use a different name.")
        rt.channel.send([(P.CREATE_ACTOR, aspec)])
        del holder
        return handle


def _detached(lifetime) -> bool:
    """lifetime= if given, else the job's default (JobConfig's default_actor_lifetime)."""
    if lifetime is None:
        lifetime = (current.info() or {}).get("default_actor_lifetime", "non_detached")
    return lifetime == "detached"


def _public_functions(cls):
    return {n: f for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("__")}


def _method_table(cls):
    """name -> (num_returns (TaskSpec's; a generator method streams unless told),
    max_task_retries (-1: the actor's), retry_exceptions, the parameters' shape (for
    checking calls' arguments wherever the handle goes)[, its __ray_invocation_decorator__
    pickled, when it has one])."""
    table = {}
    for n, f in inspect.getmembers(cls, lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
        if n.startswith("__") and n != "__call__":
            continue
        nret = getattr(f, "__mpiray_num_returns__", STREAMING if is_generator_function(f) else 1)
        retries, retry_exceptions = getattr(f, "__mpiray_retries__", (-1, False))
        bound = inspect.isfunction(f) and not isinstance(inspect.getattr_static(cls, n), staticmethod)
        table[n] = (nret, retries, retry_exceptions, signature.shape(f, bound))
        decorator = getattr(f, "__ray_invocation_decorator__", None)
        if decorator is not None:   # (Ray's: wraps the caller's .remote(); by value, as above)
            table[n] += (cloudpickle.dumps(decorator),)
    return table


def _method_groups(cls, groups) -> dict:
    """method -> its @method(concurrency_group=); the group must be one the actor has."""
    out = {}
    for name, fn in inspect.getmembers(cls, lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
        group = getattr(fn, "__mpiray_concurrency_group__", None)
        if group is None:
            continue
        if group not in groups:
            raise ValueError(f"{cls.__name__}.{name} is in concurrency group {group!r}, which "
                             f"the actor does not have (its groups: {sorted(groups) or 'none'}; "
                             "give them with concurrency_groups={...})")
        out[name] = group
    return out


def _register_name(rt, aspec, handle) -> bool:
    """Atomically claims the name cluster-wide; False if someone holds it already."""
    from mpiray.core import actor_names

    entry = (handle._aid, handle._class_name, handle._methods, handle._hold.max_pending,
             handle._hold.in_order, False, handle._hold.fails_fast)
    return actor_names.register(rt, aspec.name, aspec.namespace, entry)


def _find_named(rt, name, namespace):
    from mpiray.core import actor_names

    entry = actor_names.lookup(rt, name, namespace)
    if entry is None:
        return None
    return ActorHandle(*entry[:5], True, *entry[6:])   # (weak)


def lookup_named_actor(rt, name, namespace):
    handle = _find_named(rt, name, namespace)
    if handle is None:
        raise ValueError(f"Failed to look up actor with name {name!r} in namespace {namespace!r}")
    return handle


_pending_calls = {}   # actor id -> the first return of each call this process made, not ended


def _check_pending(actor_id, limit, name):
    """max_pending_calls, as Ray's: this process may have at most limit calls of the actor
    not ended yet; one more raises PendingCallsLimitExceeded (the caller backs off)."""
    pending = _pending_calls.get(actor_id)
    if not pending or len(pending) < limit:
        return
    store = _api._runtime().store
    still = collections.deque(oid for oid in pending if not store.contains(oid))
    _pending_calls[actor_id] = still
    if len(still) >= limit:
        from mpiray.exceptions import PendingCallsLimitExceeded

        raise PendingCallsLimitExceeded(
            f"The actor's pending calls from this process reached max_pending_calls={limit} "
            f"({name}): wait for some to end before calling again.")


class _HandleHold:
    """One counted hold on an actor's handles (refcount key): shared by a handle and
    the methods taken from it, so the actor lives while any of them does, and a method
    cached on its handle makes no reference cycle (which only the GC would break)."""

    __slots__ = ("key", "max_pending", "in_order", "weak", "fails_fast")

    def __init__(self, key, max_pending=-1, in_order=True, weak=False, fails_fast=False):
        self.key = key
        self.max_pending = max_pending   # max_pending_calls: this process's calls not ended
        self.in_order = in_order         # the actor runs one caller's calls in call order
        self.weak = weak                 # found by name or from inside: holds nothing
        self.fails_fast = fails_fast     # actor_spec.fails_fast: calls made while it restarts fail
        if not weak:
            refcount.add_local(key)

    def __del__(self):
        if self.weak:
            return
        try:
            refcount.remove_local(self.key)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class ActorHandle:
    __class_getitem__ = classmethod(types.GenericAlias)   # ActorClass[T], as Ray's generics

    def __init__(self, actor_id: bytes, class_name: str, methods: dict, max_pending: int = -1,
                 in_order: bool = True, weak: bool = False, fails_fast: bool = False):
        """weak: as Ray's handles got by name (get_actor, get_if_exists) or from inside the
        actor (current_actor), it does not keep the actor alive; the handles its creator
        made and passed on do."""
        self._aid = actor_id
        self._class_name = class_name
        self._methods = methods
        self._key = A.handle_key(actor_id)
        self._hold = _HandleHold(self._key, max_pending, in_order, weak, fails_fast)

    def __getattr__(self, name):
        if name in BUILT_IN_METHODS:  # every actor's, as in Ray (core/actor_spec.py)
            return ActorMethod(self._hold, self._aid, f"{self._class_name}.{name}", name, 1, 0)
        methods = self.__dict__.get("_methods")
        if methods is None or name.startswith("__") and name != "__call__":
            raise AttributeError(name)   # (copy/pickle probes, or not set up yet)
        if name not in methods:
            if name.startswith("_"):
                raise AttributeError(name)
            raise AttributeError(f"'{self._class_name}' actor has no method '{name}'")
        entry = self._methods[name]
        nret, retries, retry_exceptions, shape = entry[:4]
        if isinstance(retry_exceptions, bytes):
            retry_exceptions = cloudpickle.loads(retry_exceptions)
        # Kept on the handle: `actor.m.remote()` in a loop then finds it without this call.
        method = self.__dict__[name] = ActorMethod(self._hold, self._aid,
                                                   f"{self._class_name}.{name}", name, nret,
                                                   retries, retry_exceptions=retry_exceptions,
                                                   checker=signature.checker_of_shape(shape),
                                                   decorator=cloudpickle.loads(entry[4]) if len(entry) > 4 else None)
        return method

    def __dir__(self):
        """The actor's methods, as Ray's handle lists them (what an editor completes)."""
        return sorted(set(self.__dict__.get("_methods", ())) | {"__init__", *BUILT_IN_METHODS})

    def __reduce__(self):
        if not self._hold.weak:
            serialization_context.record(self._key, pin_out_of_band=False)
        hold = self._hold
        return (ActorHandle, (self._aid, self._class_name, self._methods, hold.max_pending,
                              hold.in_order, hold.weak, hold.fails_fast))

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._aid == self._aid

    def __hash__(self):
        return hash(self._aid)

    def __repr__(self):
        return f"Actor({self._class_name}, {self._aid.hex()})"

    @property
    def _actor_id(self):
        """Ray's: the actor's ActorID (the handle keeps its bytes in _aid)."""
        return ActorID(self._aid)

    _ray_actor_id = _actor_id


# Ray's actor method options that change nothing here (no task events, no tensor transport).
_METHOD_CALL_OPTIONS_IGNORED = {"enable_task_events", "_generator_backpressure_num_objects",
                                "tensor_transport", "_metadata"}


class ActorMethod:
    def __init__(self, hold, actor_id, task_name, name, num_returns, max_retries=-1, group=None,
                 retry_exceptions=False, checker=(-1, None), decorator=None):
        self._hold = hold  # keeps the actor alive while this method is held
        # Ray's __ray_invocation_decorator__: wraps the call, (args, kwargs) -> anything
        self._decorator = decorator
        self._checker = checker
        self._arg_count, self._check_args = checker
        self._actor_id, self._task_name, self._name = actor_id, task_name, name
        # max_retries -1: the actor's max_task_retries (for crashes, and for exceptions
        # retry_exceptions allows)
        self._num_returns, self._max_retries = num_returns, max_retries
        self._retry_exceptions, self._group = retry_exceptions, group
        # a call's own concurrency group travels in TaskSpec.method as "name:group"
        self._wire_name = name if group is None else f"{name}{GROUP_SEP}{group}"

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of running "
                        f"'object.{self._name}()', try 'object.{self._name}.remote()'.")

    def remote(self, *args, **kwargs):
        if self._decorator is not None:
            return self._decorator(lambda a, k: self._submit(tuple(a), dict(k or {})))(args, kwargs)
        return self._submit(args, kwargs)

    def _submit(self, args, kwargs):
        if (kwargs or len(args) != self._arg_count) and self._check_args is not None:
            self._check_args(args, kwargs)
        limit = self._hold.max_pending
        if limit > 0:
            _check_pending(self._actor_id, limit, self._task_name)
        refs = _api._runtime().call_actor(self._actor_id, self._task_name, self._wire_name, args,
                                          kwargs, self._num_returns, self._max_retries,
                                          self._retry_exceptions, self._hold.in_order,
                                          self._hold.fails_fast and self._max_retries <= 0)
        if limit > 0 and refs:
            _pending_calls.setdefault(self._actor_id, collections.deque()).append(refs[0].binary())
        return refs[0] if self._num_returns == 1 else wrap_returns(refs, self._num_returns)

    _remote = _remote_form

    def bind(self, *args, **kwargs):
        """A call of this live actor's method in a lazy graph (mpiray.dag)."""
        from mpiray.dag import PARENT_CLASS_NODE_KEY, PREV_CLASS_METHOD_CALL_KEY, ClassMethodNode

        return ClassMethodNode(self._name, args, kwargs, {},
                               {PARENT_CLASS_NODE_KEY: self, PREV_CLASS_METHOD_CALL_KEY: None})

    def options(self, num_returns=None, max_task_retries=None, concurrency_group=None,
                retry_exceptions=None, name=None, **others):
        """name: the call's task name (its state API entry, process title, timeline).
        Ray's other method options are taken and have no effect here (docs/api.md)."""
        unknown = set(others) - _METHOD_CALL_OPTIONS_IGNORED
        if unknown:
            raise ValueError(f"Invalid option keyword(s) {', '.join(sorted(unknown))} for actor "
                             "methods. Valid ones are concurrency_group, max_task_retries, name, "
                             f"num_returns, retry_exceptions, {', '.join(sorted(_METHOD_CALL_OPTIONS_IGNORED))}.")
        n = self._num_returns if num_returns is None else _options.num_returns_option(num_returns)
        retries = self._max_retries if max_task_retries is None else \
            _options.max_task_retries_option(max_task_retries)
        rx = self._retry_exceptions if retry_exceptions is None else \
            _options.retry_exceptions_option(retry_exceptions)
        if concurrency_group is not None and not isinstance(concurrency_group, str):
            raise ValueError(f"concurrency_group must be a group name, got {concurrency_group!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"The type of keyword 'name' must be (<class 'str'>,), but received type {type(name)}")
        return ActorMethod(self._hold, self._actor_id, self._task_name if name is None else name,
                           self._name, n, retries, concurrency_group if concurrency_group is not None else self._group, rx,
                           self._checker, self._decorator)


_T = typing.TypeVar("_T")
# Ray's annotation for what ActorClass.remote() returns (its "Type hints in Ray" page)
ActorProxy = typing.Union[ActorHandle[_T], type[_T]]

