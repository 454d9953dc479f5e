"""``python -m mpiray job.py [args]``: run a script on the driver only.

Under mpiexec, every rank but 0 joins the cluster at once and serves it; rank 0 runs the
script. So code before the script's ``init()`` runs once, not on every rank.
"""

import os
import runpy
import sys


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m mpiray SCRIPT [ARGS...]   (under mpiexec: the script runs "
              "on rank 0; the other ranks serve the cluster)")
        return 0 if argv else 2
    from mpiray.mpi.world import launched_by_mpi

    # as `python script.py` does, on every rank: the script's modules are importable
    # wherever its functions run (every node's workers start with this sys.path)
    here = os.path.dirname(os.path.abspath(argv[0]))
    if sys.flags.safe_path:   # (python -P: sys.path[0] is not the cwd's, keep it)
        sys.path.insert(0, here)
    else:
        sys.path[0] = here
    if launched_by_mpi():
        from mpiray import api
        from mpiray.mpi import roles

        if not roles.world().is_driver:
            roles.serve(roles.world())  # never returns
        # The other ranks serve from now on: they must hear "exit" however the script
        # ends, even if it raises or exits before init() (or never calls it).
        api._install_mpi_exit(roles.world())
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
