"""Accelerators: the resources whose units are devices with ids, and the variable that
tells a process which of them it may use.

    node resources {"GPU": 2, "neuron_cores": 4} ─► NodeResources hands out ids
        task asks {"neuron_cores": 1} ─► ids {"neuron_cores": [2]}
            worker ─► NEURON_RT_VISIBLE_CORES=2 while it runs (pin())
            get_accelerator_ids() ─► {"GPU": [], "neuron_cores": ["2"], "TPU": [], ...}

As Ray's accelerator managers do: each kind has its visible-devices variable, and
RAY_EXPERIMENTAL_NOSET_<variable> leaves that variable as the process inherited it (the
ids are still handed out and reported).
"""

import os

# resource name -> (visible-devices variable, the variable that turns setting it off)
KINDS = {
    "GPU": ("CUDA_VISIBLE_DEVICES", "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"),
    "TPU": ("TPU_VISIBLE_CHIPS", "RAY_EXPERIMENTAL_NOSET_TPU_VISIBLE_CHIPS"),
    "neuron_cores": ("NEURON_RT_VISIBLE_CORES", "RAY_EXPERIMENTAL_NOSET_NEURON_RT_VISIBLE_CORES"),
    "HPU": ("HABANA_VISIBLE_MODULES", "RAY_EXPERIMENTAL_NOSET_HABANA_VISIBLE_MODULES"),
    "NPU": ("ASCEND_RT_VISIBLE_DEVICES", "RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"),
    "RBLN": ("RBLN_DEVICES", "RAY_EXPERIMENTAL_NOSET_RBLN_RT_VISIBLE_DEVICES"),
    "FURIOSA": ("FURIOSA_DEVICES", "RAY_EXPERIMENTAL_NOSET_FURIOSA_DEVICES"),
}
# How a kind's variable writes an id, when not bare (furiosa-llm's "npu:<id>" tokens)
TOKEN_PREFIX = {"FURIOSA": "npu:"}
NONE = {}   # (the ids of a task that got no device; shared, never written)


def is_accelerator(resource: str) -> bool:
    return resource in KINDS


def kind_of_group_key(key: str):
    """The accelerator a placement group's resource key ("GPU_group_0_<pg>",
    "neuron_cores_group_<pg>") is about, or None."""
    name, sep, _ = key.partition("_group_")
    return name if sep and name in KINDS else None


# Amounts a task may ask of a kind (Ray's accelerator managers' checks), beyond the rule
# for every accelerator that an amount above 1 is whole.
WHOLE_ONLY = ("neuron_cores", "HPU", "FURIOSA")
TPU_CHIP_OPTIONS = (1, 2, 4, 8)


def node_ids(totals: dict, gpu_ids: list) -> dict:
    """Every device of this node by kind: the GPUs found (or given), and for the others
    as many ids as the node has whole units (declared, as Ray's custom resources are):
    the first ones its visible-devices variable lists when that is set, else 0, 1, ..."""
    out = {"GPU": list(gpu_ids)} if gpu_ids else {}
    for name in KINDS:
        if name != "GPU" and totals.get(name, 0) >= 1:
            n = int(totals[name])
            listed = visible(name)
            out[name] = listed[:n] if listed is not None and len(listed) >= n else list(range(n))
    return out


def visible(name: str):
    """The device ids this process's variable for the kind lists (strings), or None when
    it is not set."""
    value = os.environ.get(KINDS[name][0])
    if value is None:
        return None
    if name == "GPU" and value == "NoDevFiles":   # (what some drivers set: no devices)
        return []
    prefix = TOKEN_PREFIX.get(name, "")
    ids = [x.strip() for x in value.split(",") if x.strip() and x.strip() != "-1"]
    return [x[len(prefix):].split(":", 1)[0] if prefix and x.startswith(prefix) else x for x in ids]


def variable_value(name: str, ids) -> str:
    """The visible-devices variable's value for these ids of the kind."""
    prefix = TOKEN_PREFIX.get(name, "")
    return ",".join(f"{prefix}{i}" for i in ids)


def request_error(name: str, amount):
    """Why a task may not ask this amount of the kind (Ray's words), or None."""
    if name in WHOLE_ONLY and float(amount) != int(amount):
        return (f"{name} resource quantity must be whole numbers. The specified quantity "
                f"{amount} is invalid.")
    if name == "TPU" and amount and amount not in TPU_CHIP_OPTIONS:
        return (f"The number of requested 'TPU' was set to {amount} which is not a supported "
                f"chip configuration. Supported configs: {TPU_CHIP_OPTIONS}")
    return None


def report(ids: dict) -> dict:
    """get_accelerator_ids()'s answer: every kind, ids as strings."""
    return {name: [str(i) for i in ids.get(name, ())] for name in KINDS}


class Pinning:
    """Sets the visible-devices variables of a worker for what it runs now; a kind not
    handed out gets back what the worker started with."""

    def __init__(self):
        self.original = {name: os.environ.get(var) for name, (var, _) in KINDS.items()}
        self.current = NONE

    def pin(self, ids: dict) -> None:
        if ids == self.current:
            return   # (the usual case: no environment write per task)
        for name in set(ids) | set(self.current):
            var, noset = KINDS[name]
            if os.environ.get(noset):
                continue
            want = variable_value(name, ids[name]) if name in ids else self.original[name]
            if want is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = want
        self.current = ids


def pin_process(ids: dict, hide_unheld: bool) -> None:
    """A new worker's variables for the devices it holds for life (an actor's); hide_unheld:
    one that holds none of a kind sees none of it (RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1:
    the variable is "", every kind, as Ray's; a task worker keeps that as its default)."""
    for name, (var, noset) in KINDS.items():
        if os.environ.get(noset):
            continue
        if name in ids:
            os.environ[var] = variable_value(name, ids[name])
        elif hide_unheld:
            os.environ[var] = ""
