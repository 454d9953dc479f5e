"""MPI mode: ``mpiexec -n N python job.py`` forms the cluster (see roles.py)."""
