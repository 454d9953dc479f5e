"""ray.util.accelerators.tpu: what a TPU host says about its pod, read where Ray's TPU
support reads it (the TPU runtime's environment and its device files); a host without
TPUs answers None / 0."""

from __future__ import annotations

import glob
import os


def get_current_pod_name():
    """The TPU pod this host belongs to (TPU_NAME), or None."""
    return os.environ.get("TPU_NAME") or None


def get_current_pod_worker_count():
    """How many hosts the pod has (TPU_WORKER_HOSTNAMES, comma-separated), or None."""
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES")
    return len([h for h in hosts.split(",") if h.strip()]) if hosts else None


def get_num_tpu_chips_on_node() -> int:
    """The TPU chips this host has: its /dev/accel* devices (or VFIO groups)."""
    chips = glob.glob("/dev/accel*")
    if not chips:
        chips = [p for p in glob.glob("/dev/vfio/*") if os.path.basename(p).isdigit()]
    return len(chips)


__all__ = ["get_current_pod_name", "get_current_pod_worker_count", "get_num_tpu_chips_on_node"]
