"""Node labels and the selectors that place work by them (Ray's labels).

    init(labels={...}) / MPIRAY_LABELS='{...}' (other ranks) ──► the node table's "labels"
        (with Ray's default ray.io/node_id) ──► nodes()[i]["Labels"], get_node_labels()
    .options(label_selector={"k": "v" | "!v" | "in(a,b)" | "!in(a,b)"})
    scheduling_strategy=NodeLabelSchedulingStrategy(hard={k: In(..)}, soft={..})
        ──► Selector (checked with the options)
        ──► at submission, the nodes it matches ──► a mark in the request:
              every node: none;  some: node:<i> of one of them;  none: a node that
              does not exist (the work waits, as in Ray, until the cluster changes)

The mark asks LABEL_SLIVER of node:<i>, an amount that is not NodeAffinity's: the
scheduler takes it as a custom resource only node i has, so work that node i cannot hold
yet waits there (as Ray's pending label-selected work) instead of failing.
"""

from __future__ import annotations

import itertools
import re

RESERVED_PREFIX = "ray.io/"
LABEL_SLIVER = 2.0 ** -14   # (a power of two: sums of it stay exact)
NO_MATCH = f"node:{1 << 20}"   # (scheduling_strategies.NO_SUCH_NODE's: no node has it)

# Kubernetes' label syntax, which Ray's labels share: an optional DNS prefix and a name
# of up to 63 characters, alphanumeric at both ends.
_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def check_key(key, what: str):
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what}: a label key must be a non-empty string, got {key!r}")
    prefix, _, name = key.rpartition("/")
    if not name or not _NAME.match(name) or (prefix and not _PREFIX.match(prefix)):
        raise ValueError(f"{what}: invalid label key {key!r}: a name of at most 63 "
                         "characters (letters, digits, '-', '_', '.', alphanumeric at both "
                         "ends), optionally after a DNS prefix and '/'")


def check_value(value, what: str, key: str):
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{what}: invalid value {value!r} for label {key!r}: a string of at "
                         "most 63 characters (letters, digits, '-', '_', '.', alphanumeric at "
                         "both ends)")


def check_node_labels(labels, what: str = "init(labels=...)") -> dict:
    """A node's own labels: str -> str, none under Ray's reserved ray.io/."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise TypeError(f"{what} must be a dict of label names to values, got "
                        f"{type(labels).__name__}")
    for key, value in labels.items():
        check_key(key, what)
        if key.startswith(RESERVED_PREFIX):
            raise ValueError(f"{what}: label key {key!r} uses the reserved prefix "
                             f"{RESERVED_PREFIX!r}: Ray sets the labels under it")
        check_value(value, what, key)
    return dict(labels)


def node_labels(own: dict, node_id: str) -> dict:
    """What nodes() and get_node_labels() show: Ray's default labels (its node id under
    both spellings Ray has used, so selectors written for either match), then the node's."""
    return {"ray.io/node_id": node_id, "ray.io/node-id": node_id, **own}


# ----------------------------------------------------------------- selectors
# A term is (key, op, values) with op one of "in", "notin", "exists", "!exists".
def _matches(term, labels: dict) -> bool:
    key, op, values = term
    if op == "exists":
        return key in labels
    if op == "!exists":
        return key not in labels
    found = labels.get(key)
    return (found in values) if op == "in" else (found not in values)


class Selector:
    """hard: terms every chosen node must match; soft: terms preferred among those."""

    def __init__(self, hard=(), soft=()):
        self.hard, self.soft = tuple(hard), tuple(soft)

    def __bool__(self):
        return bool(self.hard or self.soft)

    def choose(self, nodes: list) -> list:
        """The indexes of nodes ([(index, labels)]) the work may go to."""
        fit = [i for i, labels in nodes if all(_matches(t, labels) for t in self.hard)]
        if self.soft:
            preferred = [i for i, labels in nodes
                         if i in fit and all(_matches(t, labels) for t in self.soft)]
            fit = preferred or fit
        return fit

    def __repr__(self):
        return f"Selector(hard={self.hard}, soft={self.soft})"


_IN = re.compile(r"^(!?)in\((.*)\)$")


def parse_label_selector(selector: dict, what: str = "label_selector") -> Selector:
    """label_selector={"key": "v"} (equals), "!v" (not), "in(a,b)", "!in(a,b)"."""
    terms = []
    for key, text in selector.items():
        check_key(key, what)
        if not isinstance(text, str):
            raise ValueError(f"{what}: the selector for {key!r} must be a string, got {text!r}")
        found = _IN.match(text.strip())
        if found:
            negate, body = found.group(1), found.group(2)
            values = tuple(v.strip() for v in body.split(","))
            if not body.strip() or not all(values):
                raise ValueError(f"{what}: {text!r} for {key!r} lists no values")
        else:
            negate, values = ("!", (text[1:],)) if text.startswith("!") else ("", (text,))
        for value in values:
            check_value(value, what, key)
        terms.append((key, "notin" if negate else "in", values))
    return Selector(terms)


def expressions_to_terms(expressions, what: str) -> list:
    """NodeLabelSchedulingStrategy's {key: In(..) | NotIn(..) | Exists() | DoesNotExist()}."""
    from mpiray.util.scheduling_strategies import DoesNotExist, Exists, In, NotIn

    if expressions is None:
        return []
    param = what.rpartition(" ")[2]   # ("hard" or "soft": Ray's words name it)
    if not isinstance(expressions, dict):
        raise ValueError(f"The {param} parameter must be a map (dict), got "
                         f"{type(expressions).__name__}: {what} takes label keys to In/NotIn/"
                         "Exists/DoesNotExist")
    terms = []
    for key, op in expressions.items():
        if not isinstance(key, str):
            raise ValueError(f"The map key of the {param} parameter must be of type str, got {key!r}")
        check_key(key, what)
        if isinstance(op, In):
            terms.append((key, "in", op.values))
        elif isinstance(op, NotIn):
            terms.append((key, "notin", op.values))
        elif isinstance(op, Exists):
            terms.append((key, "exists", ()))
        elif isinstance(op, DoesNotExist):
            terms.append((key, "!exists", ()))
        else:
            raise ValueError(f"The map value of the {param} parameter for {key!r} must be one of "
                             f"the `In`, `NotIn`, `Exists` or `DoesNotExist` operator, got {op!r}")
    return terms


# ----------------------------------------------------------------- submission
_turns = itertools.count()
_tables = {}   # session -> [(index, labels)]: a session's nodes and labels do not change


def _nodes_now() -> list:
    from mpiray.core import cluster_info, current

    session = (current.info() or {}).get("session", "")
    table = _tables.get(session)
    if table is None:
        table = _tables[session] = [(n["NodeIndex"], n["Labels"]) for n in cluster_info.ask("nodes")]
    return table


def mark(selector: Selector) -> dict:
    """The request mark that places work where selector allows (see the module's picture):
    of several matching nodes the caller's own, else each in turn."""
    from mpiray import _ids
    from mpiray.core import current
    from mpiray.core.node import node_resource

    nodes = _nodes_now()
    fit = selector.choose(nodes)
    if len(fit) == len(nodes):
        return {}
    if not fit:
        return {NO_MATCH: LABEL_SLIVER}
    here = _ids.node_index_of((current.info() or {}).get("node_id", "") or "")
    index = here if here in fit else fit[next(_turns) % len(fit)]
    return {node_resource(index): LABEL_SLIVER}


def current_node_labels() -> dict:
    from mpiray import _ids
    from mpiray.core import current

    here = _ids.node_index_of((current.info() or {}).get("node_id", "") or "")
    for index, labels in _nodes_now():
        if index == here:
            return dict(labels)
    return {}
