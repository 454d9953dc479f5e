"""ray.cloudpickle: the cloudpickle mpiray pickles functions and classes with.

Its dumps/dump mark what they pickle as the user's own (out of band): an ObjectRef in
it is pinned for the rest of the process, or refused with
OufOfBandObjectRefSerializationException under
RAY_allow_out_of_band_object_ref_serialization=0, as Ray's ray.cloudpickle does.
"""

import cloudpickle as _cloudpickle
from cloudpickle import *  # noqa: F401,F403
from cloudpickle import loads, CloudPickler, Pickler  # noqa: F401

from mpiray.core import serialization_context as _context


def dumps(obj, protocol=None, buffer_callback=None):
    with _context.user_pickling():
        return _cloudpickle.dumps(obj, protocol=protocol, buffer_callback=buffer_callback)


def dump(obj, file, protocol=None, buffer_callback=None):
    with _context.user_pickling():
        return _cloudpickle.dump(obj, file, protocol=protocol, buffer_callback=buffer_callback)


def dumps_debug(obj, *args, **kwargs):
    """dumps(), and when the object does not pickle, inspect_serializability's report of
    which part of it does not (printed) before the error is raised, as Ray's."""
    try:
        return dumps(obj, *args, **kwargs)
    except (TypeError, _cloudpickle.pickle.PicklingError):
        _report(obj)
        raise


def dump_debug(obj, file, *args, **kwargs):
    """dump() with dumps_debug()'s report."""
    try:
        return dump(obj, file, *args, **kwargs)
    except (TypeError, _cloudpickle.pickle.PicklingError):
        _report(obj)
        raise


def _report(obj):
    from mpiray.util.check_serialize import inspect_serializability

    inspect_serializability(obj)
