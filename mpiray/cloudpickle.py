"""ray.cloudpickle: the cloudpickle mpiray pickles functions and classes with."""

from cloudpickle import *  # noqa: F401,F403
from cloudpickle import dumps, loads, CloudPickler, Pickler  # noqa: F401
