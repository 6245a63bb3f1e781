"""mpi_tools.py — how the tests start moco-train under OpenMPI's mpirun.

mpirun refuses to run as root unless told it may (CI runs as root), and counts slots by cores:
two ranks on a two-core machine that also runs other tests need --oversubscribe. Ranks do not
bind to cores (--bind-to none) so that each rank's OpenMP threads may use any core, as the
daemon launches them.
"""
import os
import shutil

MPIRUN = shutil.which("mpirun")


def mpirun_env(extra=None):
    """The environment for mpirun: root allowed, ranks yield the CPU while they wait."""
    env = dict(os.environ)
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    if extra:
        env.update(extra)
    return env


def mpirun_cmd(ranks, program_args):
    """mpirun -np RANKS ... program_args (a list whose first item is the program)."""
    if MPIRUN is None:
        raise RuntimeError("mpirun is not installed: run `make test-deps` (Debian: openmpi-bin)")
    return [MPIRUN, "-np", str(ranks), "--oversubscribe", "--bind-to", "none"] + list(program_args)
