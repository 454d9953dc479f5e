"""Node labels: init(labels=), nodes()' Labels, label_selector= and
NodeLabelSchedulingStrategy on one node (tests/test_mpi_launch.py places by them across
nodes)."""

import pytest

from mpiray.util.scheduling_strategies import (DoesNotExist, Exists, In, NodeLabelSchedulingStrategy,
                                               NotIn)


def _labelled(ray):
    ray.init(num_cpus=2, labels={"zone": "a", "disk": "ssd"})

    @ray.remote
    def zone():
        return ray.get_runtime_context().get_node_labels()["zone"]

    @ray.remote
    class Where:
        def labels(self):
            return ray.get_runtime_context().get_node_labels()

    return zone, Where


def test_init_labels_show_in_nodes_and_the_runtime_context(fresh):
    ray = fresh
    _labelled(ray)
    node = ray.nodes()[0]
    assert node["Labels"] == {"ray.io/node_id": node["NodeID"], "ray.io/node-id": node["NodeID"],
                              "zone": "a", "disk": "ssd"}
    assert ray.get_runtime_context().get_node_labels() == node["Labels"]


@pytest.mark.parametrize("selector", [
    {"zone": "a"}, {"zone": "in(a,b)"}, {"zone": "!b"}, {"zone": "!in(b, c)", "disk": "ssd"},
])
def test_work_whose_selector_matches_runs(fresh, selector):
    ray = fresh
    zone, Where = _labelled(ray)
    assert ray.get(zone.options(label_selector=selector).remote(), timeout=60) == "a"
    actor = Where.options(label_selector=selector).remote()
    assert ray.get(actor.labels.remote(), timeout=60)["disk"] == "ssd"


@pytest.mark.parametrize("hard, soft", [
    ({"zone": In("a", "b")}, None), ({"disk": Exists()}, None), ({"gpu": DoesNotExist()}, None),
    ({"zone": NotIn("b")}, {"disk": In("nvme")}),   # (soft is a preference only)
])
def test_node_label_strategy_places_on_matching_nodes(fresh, hard, soft):
    ray = fresh
    zone, _ = _labelled(ray)
    strategy = NodeLabelSchedulingStrategy(hard=hard, soft=soft)
    assert ray.get(zone.options(scheduling_strategy=strategy).remote(), timeout=60) == "a"


def test_work_no_node_matches_stays_pending_with_a_warning(fresh, capfd):
    ray = fresh
    zone, Where = _labelled(ray)
    task = zone.options(label_selector={"zone": "b"}).remote()
    strategy = NodeLabelSchedulingStrategy(hard={"disk": DoesNotExist()})
    other = zone.options(scheduling_strategy=strategy).remote()
    actor = Where.options(label_selector={"zone": "in(b,c)"}).remote()
    call = actor.labels.remote()
    ready, pending = ray.wait([task, other, call], num_returns=3, timeout=1.0)
    assert ready == [] and len(pending) == 3
    assert ray.get(zone.remote(), timeout=60) == "a"   # the node still runs other work
    ray.cancel(task)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(task, timeout=60)
    assert "no node has the labels" in capfd.readouterr().err


@pytest.mark.parametrize("labels, message", [
    ({"ray.io/node_id": "x"}, "reserved prefix"),
    ({"bad key!": "x"}, "invalid label key"),
    ({"zone": 3}, "invalid value 3"),
])
def test_bad_node_labels_are_refused(fresh, labels, message):
    with pytest.raises(ValueError, match=message):
        fresh.init(num_cpus=1, labels=labels)
    assert not fresh.is_initialized()


def test_bad_selectors_are_refused_when_the_options_are_given(fresh):
    ray = fresh

    @ray.remote
    def f():
        return 1

    for selector, message in [({"zone": "in()"}, "lists no values"), ({"zone": 3}, "must be a string"),
                              ({"a b": "x"}, "invalid label key"), ({"zone": "in(a,b c)"}, "invalid value")]:
        with pytest.raises(ValueError, match=message):
            f.options(label_selector=selector)
    with pytest.raises(ValueError, match="cannot both be empty"):
        NodeLabelSchedulingStrategy(hard={})
    with pytest.raises(ValueError, match="`In`, `NotIn`, `Exists` or `DoesNotExist`"):
        NodeLabelSchedulingStrategy(hard={"zone": "a"})
    with pytest.raises(ValueError, match="must be a non-empty tuple"):
        In()
