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
