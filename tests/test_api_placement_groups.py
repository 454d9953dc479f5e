"""Placement groups on one host: reserve, run tasks and actors in bundles, wait, remove."""

import os
import time

import pytest

from mpiray.util.placement_group import (
    get_current_placement_group, get_placement_group, placement_group, placement_group_table,
    remove_placement_group,
)
from mpiray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@pytest.fixture
def ray4(fresh):
    fresh.init(num_cpus=4, resources={"disk": 2})
    yield fresh
    fresh.shutdown()


def in_pg(pg, index=-1, **opts):
    return dict(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, index), **opts)


def test_a_group_reserves_its_bundles_and_gives_them_back(ray4):
    ray = ray4
    pg = placement_group([{"CPU": 1}, {"CPU": 2, "disk": 1}], strategy="PACK", name="pair")
    assert ray.get(pg.ready(), timeout=10) == pg
    assert pg.wait(5)
    assert pg.bundle_count == 2 and pg.bundle_specs[1] == {"CPU": 2.0, "disk": 1.0}
    free = ray.available_resources()
    assert free["CPU"] == 1.0 and free["disk"] == 1.0   # held for the group now
    assert ray.cluster_resources()["CPU"] == 4.0
    info = placement_group_table(pg)
    assert info["state"] == "CREATED" and info["strategy"] == "PACK" and info["name"] == "pair"
    assert set(info["bundles_to_node_id"]) == {0, 1}
    assert get_placement_group("pair") == pg
    assert pg.id.hex() in placement_group_table()

    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"
    free = ray.available_resources()
    assert free["CPU"] == 4.0 and free["disk"] == 2.0
    assert not any("_group_" in k for k in free)
    with pytest.raises(ValueError, match="pair"):
        get_placement_group("pair")


def test_tasks_run_in_their_bundle_and_share_it(ray4):
    ray = ray4
    pg = placement_group([{"CPU": 1}, {"CPU": 2}])
    pg.wait(10)

    @ray.remote
    def held():
        time.sleep(0.3)
        return ray.get_runtime_context().get_assigned_resources(), \
            ray.get_runtime_context().get_placement_group_id()

    res, pg_id = ray.get(held.options(**in_pg(pg, 1, num_cpus=2)).remote(), timeout=30)
    assert res == {"CPU": 2.0} and pg_id == pg.id.hex()

    # three one-CPU tasks in a 3-CPU group run side by side; the node's last CPU stays free
    start = time.monotonic()
    out = ray.get([held.options(**in_pg(pg)).remote() for _ in range(3)], timeout=30)
    assert all(r == {"CPU": 1.0} for r, _ in out)
    assert time.monotonic() - start < 0.9 + 2
    assert ray.get(held.remote(), timeout=30)[1] is None   # outside: no group
    remove_placement_group(pg)


@pytest.mark.parametrize("first,second", [(0, 0), (-1, 0)])
def test_work_beyond_a_bundle_waits_for_it(ray4, first, second):
    """One CPU in the group: two one-CPU tasks take turns, also when one of them asks for
    any bundle (-1) and the other for bundle 0 (both names are the group's CPU)."""
    ray = ray4
    pg = placement_group([{"CPU": 1}])
    pg.wait(10)

    @ray.remote
    def stamp():
        t = time.monotonic()
        time.sleep(0.4)
        return t

    a, b = ray.get([stamp.options(**in_pg(pg, first)).remote(),
                    stamp.options(**in_pg(pg, second)).remote()], timeout=30)
    assert abs(a - b) >= 0.35
    remove_placement_group(pg)


def test_a_task_waiting_on_its_child_in_the_same_bundle_lends_its_cpu(ray4):
    ray = ray4
    pg = placement_group([{"CPU": 1}])

    @ray.remote
    def child():
        return "child"

    @ray.remote
    def parent(pg):
        return ray.get(child.options(**in_pg(pg, 0)).remote())

    assert ray.get(parent.options(**in_pg(pg, 0)).remote(pg), timeout=30) == "child"
    remove_placement_group(pg)


def test_actors_live_in_bundles(ray4):
    ray = ray4
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")

    @ray.remote
    class Where:
        def group(self):
            return get_current_placement_group()

        def pid(self):
            return os.getpid()

    actors = [Where.options(**in_pg(pg, i)).remote() for i in range(2)]
    assert [ray.get(a.group.remote(), timeout=30) for a in actors] == [pg, pg]
    assert ray.available_resources()["CPU"] == 2.0
    remove_placement_group(pg)
    for a in actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(a.pid.remote(), timeout=30)
    with pytest.raises(ray.exceptions.ActorPlacementGroupRemoved, match="placement group was removed"):
        ray.get(actors[0].pid.remote(), timeout=30)
    assert issubclass(ray.exceptions.ActorPlacementGroupRemoved, ray.exceptions.ActorDiedError)   # as Ray's


def test_removing_a_group_ends_its_running_and_queued_tasks(ray4):
    ray = ray4
    pg = placement_group([{"CPU": 1}])
    pg.wait(10)

    @ray.remote(max_retries=0)
    def long():
        time.sleep(60)

    running = long.options(**in_pg(pg, 0)).remote()
    queued = long.options(**in_pg(pg, 0)).remote()
    time.sleep(0.5)
    start = time.monotonic()
    remove_placement_group(pg)
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(queued, timeout=30)
    with pytest.raises(ray.exceptions.WorkerCrashedError):   # (as Ray's: its worker is killed)
        ray.get(running, timeout=30)
    assert time.monotonic() - start < 10
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(long.options(**in_pg(pg, 0)).remote(), timeout=30)   # submitted after
    assert ray.available_resources()["CPU"] == 4.0


def test_a_group_waits_for_room_and_one_too_big_stays_pending(ray4, capfd):
    ray = ray4

    @ray.remote
    def busy():
        time.sleep(1.0)

    held = [busy.remote() for _ in range(4)]   # every CPU taken for a second
    time.sleep(0.2)
    pg = placement_group([{"CPU": 2}])
    assert not pg.wait(0.1)
    assert placement_group_table(pg)["state"] == "PENDING"
    assert pg.wait(20)
    ray.get(held)

    too_big = placement_group([{"CPU": 8}])
    assert "cannot be placed" in capfd.readouterr().err
    assert not too_big.wait(0.5)
    assert placement_group_table(too_big)["state"] == "PENDING"
    spread = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")  # one node
    assert not spread.wait(0.5)
    for g in (pg, too_big, spread):
        remove_placement_group(g)
    assert ray.available_resources()["CPU"] == 4.0


def test_groups_are_reserved_whole_and_one_at_a_time(ray4, capfd):
    ray = ray4
    # each bundle fits the node, both together do not: pending, and the node keeps its CPUs
    pg = placement_group([{"CPU": 3}, {"CPU": 2}])
    assert not pg.wait(0.5)
    assert "cannot be placed" in capfd.readouterr().err

    @ray.remote
    def one():
        return 1

    assert ray.get([one.remote() for _ in range(4)], timeout=30) == [1] * 4
    remove_placement_group(pg)

    @ray.remote
    def busy(s):
        time.sleep(s)

    held = [busy.remote(s) for s in (0.5, 1.0, 1.5)]
    time.sleep(0.2)
    a = placement_group([{"CPU": 2}, {"CPU": 1}])
    b = placement_group([{"CPU": 1}, {"CPU": 2}])   # would deadlock with a if each took a part
    assert a.wait(20)
    assert not b.wait(0.2)   # a holds 3 of the 4 CPUs: b waits, holding nothing
    assert placement_group_table(b)["state"] == "PENDING"
    remove_placement_group(a)
    assert b.wait(20)
    remove_placement_group(b)
    ray.get(held)


def test_groups_made_while_the_node_is_busy_are_each_reserved_once(ray4):
    """Two groups waiting for room: once it comes, the first one's reservation must not
    reserve it again when it asks for the next (each gets its bundle, all comes back)."""
    ray = ray4

    @ray.remote(num_cpus=4)
    def hold(s):
        time.sleep(s)

    h = hold.remote(1.0)
    time.sleep(0.3)
    first, second = placement_group([{"CPU": 1}]), placement_group([{"CPU": 1}])
    ray.get(h, timeout=30)
    assert first.wait(20) and second.wait(20)
    free = ray.available_resources()
    assert free["CPU"] == 2.0
    assert [free[f"CPU_group_0_{g.id.hex()}"] for g in (first, second)] == [1.0, 1.0]
    remove_placement_group(first)
    remove_placement_group(second)
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU") != 4.0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ray.available_resources()["CPU"] == 4.0


def test_a_group_that_cannot_be_placed_yet_does_not_hold_back_later_ones(ray4, tmp_path):
    """Ray goes on to the next group while one waits: a task holding what a waiting
    group needs can still get a group of its own (here it would otherwise wait for ever)."""
    ray = ray4
    big_made, gate = tmp_path / "big_made", tmp_path / "gate"

    @ray.remote(resources={"disk": 2})
    def holds_disk():
        while not big_made.exists():
            time.sleep(0.01)
        small = placement_group([{"CPU": 1}])   # after big, which waits for this task
        ok = small.wait(20)
        remove_placement_group(small)
        while not gate.exists():
            time.sleep(0.01)
        return ok

    ref = holds_disk.remote()
    time.sleep(0.3)
    big = placement_group([{"disk": 2}])
    assert not big.wait(0.2)
    big_made.write_text("1")
    time.sleep(0.5)
    gate.write_text("1")
    assert ray.get(ref, timeout=60) is True
    assert big.wait(20)


def test_bad_arguments_are_refused_by_name(ray4):
    ray = ray4
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="non-empty list"):
        placement_group([])
    with pytest.raises(ValueError, match="cannot be an empty dictionary"):
        placement_group([{"CPU": 1}, {}])
    with pytest.raises(ValueError, match="non-negative"):
        placement_group([{"CPU": -1}])
    with pytest.raises(ValueError, match="reserved"):
        placement_group([{"bundle": 1}])
    pg = placement_group([{"CPU": 1}])
    with pytest.raises(ValueError, match="bundle index 3 is invalid"):
        PlacementGroupSchedulingStrategy(pg, 3)

    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="cannot fit into the bundle 0"):
        f.options(**in_pg(pg, 0, num_cpus=2))
    with pytest.raises(ValueError, match="cannot fit into"):
        f.options(**in_pg(pg, 0, num_gpus=1))
    with pytest.raises(TypeError, match="PlacementGroup"):
        remove_placement_group("pg")
    with pytest.raises(ValueError, match="scheduling_strategy"):
        f.options(scheduling_strategy=123)
    remove_placement_group(pg)


def test_older_placement_group_options_and_ray_util_names(ray4):
    ray = ray4
    pg = ray.util.placement_group([{"CPU": 1}])

    @ray.remote
    def f():
        return ray.get_runtime_context().get_placement_group_id()

    assert ray.get(f.options(placement_group=pg, placement_group_bundle_index=0).remote(),
                   timeout=30) == pg.id.hex()
    assert ray.util.placement_group_table(pg)["state"] == "CREATED"
    ray.util.remove_placement_group(pg)


def test_placement_groups_from_inside_a_task(ray4):
    ray = ray4

    @ray.remote
    def make_and_use():
        pg = placement_group([{"CPU": 1}], name="inner")
        ray.get(pg.ready())
        got = get_placement_group("inner")

        @ray.remote
        def inside():
            return ray.get_runtime_context().get_placement_group_id()

        out = ray.get(inside.options(**in_pg(pg, 0)).remote())
        state = placement_group_table(pg)["state"]
        remove_placement_group(pg)
        return got == pg, out == pg.id.hex(), state

    assert ray.get(make_and_use.remote(), timeout=60) == (True, True, "CREATED")


def test_children_are_captured_only_when_asked(ray4):
    ray = ray4
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    pg.wait(10)

    @ray.remote
    def child():
        return ray.get_runtime_context().get_placement_group_id()

    @ray.remote
    def parent():
        return ray.get(child.remote()), ray.get(child.options(scheduling_strategy="DEFAULT").remote())

    @ray.remote
    def parent_opting_out():   # (as Ray: placement_group=None is not captured)
        return ray.get(child.options(placement_group=None).remote())

    @ray.remote
    def parent_opting_out_by_strategy():   # (Ray's docs: a strategy naming no group)
        nowhere = PlacementGroupSchedulingStrategy(placement_group=None)
        return ray.get(child.options(scheduling_strategy=nowhere).remote())

    @ray.remote
    class Spawner:
        def spawn(self):
            return ray.get(child.remote())

    captured = PlacementGroupSchedulingStrategy(pg, 0, placement_group_capture_child_tasks=True)
    assert ray.get(parent.options(scheduling_strategy=captured).remote(), timeout=30) == \
        (pg.id.hex(), None)
    assert ray.get(parent_opting_out.options(scheduling_strategy=captured).remote(),
                   timeout=30) is None
    assert ray.get(parent_opting_out_by_strategy.options(scheduling_strategy=captured).remote(),
                   timeout=30) is None
    with pytest.raises(ValueError, match="bundle index must be -1"):
        PlacementGroupSchedulingStrategy(None, 0)
    plain = PlacementGroupSchedulingStrategy(pg, 0)
    assert ray.get(parent.options(scheduling_strategy=plain).remote(), timeout=30) == (None, None)
    spawner = Spawner.options(scheduling_strategy=captured, num_cpus=0).remote()
    assert ray.get(spawner.spawn.remote(), timeout=30) == pg.id.hex()
    any_bundle = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
    assert ray.get(parent.options(scheduling_strategy=any_bundle, num_cpus=0).remote(),
                   timeout=30)[0] == pg.id.hex()   # (regression: a 2-key request was skipped)
    assert ray.get(Spawner.options(scheduling_strategy=any_bundle).remote().spawn.remote(),
                   timeout=30) == pg.id.hex()
    remove_placement_group(pg)


def test_bundle_index_and_node_affinity_arguments_are_checked(ray4):
    """As Ray: a bundle index without a group, an index out of range, and contradictory
    NodeAffinitySchedulingStrategy flags are ValueErrors; a NodeID object is taken."""
    ray = ray4
    from mpiray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def f():
        return 1

    with pytest.raises(ValueError, match="bundle index must be -1"):
        f.options(placement_group_bundle_index=0).remote()
    pg = placement_group([{"CPU": 1}])
    pg.wait(10)
    with pytest.raises(ValueError, match="placement group bundle index 3 is invalid"):
        f.options(placement_group=pg, placement_group_bundle_index=3).remote()
    with pytest.raises(ValueError, match="_spill_on_unavailable cannot be set"):
        NodeAffinitySchedulingStrategy(ray.NodeID.from_random().hex(), soft=False,
                                       _spill_on_unavailable=True)
    with pytest.raises(ValueError, match="_fail_on_unavailable cannot be set"):
        NodeAffinitySchedulingStrategy(ray.NodeID.from_random().hex(), soft=True,
                                       _fail_on_unavailable=True)
    here = ray.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(ray.NodeID.from_hex(here), soft=False)
    assert strategy.node_id == here
    assert ray.get(f.options(scheduling_strategy=strategy).remote(), timeout=30) == 1
    remove_placement_group(pg)


def test_table_stats_and_wait_after_removal(ray4):
    """As Ray: placement_group_table() has "stats"; wait() on a removed group raises;
    the old placement_group= option warns it is deprecated."""
    ray = ray4
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(10)
    assert ray.util.placement_group_table(pg)["stats"]["scheduling_state"] == "FINISHED"
    never = placement_group([{"CPU": 1000}])
    assert ray.util.placement_group_table(never)["stats"]["scheduling_state"] == "INFEASIBLE"

    @ray.remote(num_cpus=1)
    def f():
        return 1

    with pytest.warns(DeprecationWarning, match="placement_group parameter is deprecated"):
        ref = f.options(placement_group=pg).remote()
    assert ray.get(ref, timeout=30) == 1
    remove_placement_group(pg)
    remove_placement_group(never)
    assert ray.util.placement_group_table(pg)["stats"]["scheduling_state"] == "REMOVED"
    with pytest.raises(ValueError, match="is removed"):
        pg.wait(5)


def test_group_handles_by_id_names_and_pending_stats_as_rays(ray4):
    """PlacementGroup(id) alone is a handle (its bundles looked up when asked for; an
    unknown id's removal does nothing); a second live group of one name in a namespace is
    refused with RaySystemError; a pending group's latencies read 0.0."""
    from mpiray.util.placement_group import PlacementGroup

    ray = ray4
    pg = placement_group([{"CPU": 1}, {"CPU": 2}], name="twice")
    ray.get(pg.ready(), timeout=30)
    again = PlacementGroup(pg.id)
    assert again.bundle_specs == [{"CPU": 1.0}, {"CPU": 2.0}] and again.bundle_count == 2
    with pytest.raises(ray.exceptions.RaySystemError, match="already exists"):
        placement_group([{"CPU": 1}], name="twice")
    remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_random()))  # a no-op
    remove_placement_group(again)
    renamed = placement_group([{"CPU": 1}], name="twice")   # the name is free again
    assert ray.get(renamed.ready(), timeout=30) is not None
    pending = placement_group([{"CPU": 64}])
    stats = placement_group_table(pending)["stats"]
    assert stats["end_to_end_creation_latency_ms"] == 0.0 and stats["scheduling_latency_ms"] == 0.0
    remove_placement_group(pending)
    remove_placement_group(renamed)


def test_placement_group_checks_and_names_as_rays(ray):
    """Ray's validation words, validate_placement_group, PlacementGroup.empty(),
    bundle_cache, the object_store_memory deprecation warnings, list_placement_groups'
    is_detached / creator_job_id / stats, and a captured child that fits no bundle."""
    import warnings

    from mpiray.util.placement_group import (VALID_PLACEMENT_GROUP_STRATEGIES, PlacementGroup,
                                             placement_group, remove_placement_group,
                                             validate_placement_group)
    from mpiray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    from mpiray.util.state import list_placement_groups

    assert VALID_PLACEMENT_GROUP_STRATEGIES == {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}
    for bad, words in ((dict(bundles=[{"CPU": 1}], strategy="NOPE"), "Invalid placement group strategy"),
                       (dict(bundles={"CPU": 1}), "must be a list"),
                       (dict(bundles=[{"CPU": "1"}]), "resource dictionaries"),
                       (dict(bundles=[{"CPU": 0}]), "only 0 values"),
                       (dict(bundles=[{"CPU": 1}], _soft_target_node_id=ray.NodeID.from_random().hex()),
                        "only works with STRICT_PACK"),
                       (dict(bundles=[{"CPU": 1}], strategy="STRICT_PACK", _soft_target_node_id="a"),
                        "Invalid hex ID")):
        with pytest.raises(ValueError, match=words):
            placement_group(**bad)
        with pytest.raises(ValueError, match=words):
            validate_placement_group(**bad)
    assert validate_placement_group([{"CPU": 1}], "STRICT_PACK") is True
    assert PlacementGroup.empty().is_empty

    @ray.remote
    def where():
        return ray.util.get_current_placement_group() is None

    # (Ray's empty group: work given it runs outside any group)
    assert ray.get(where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        PlacementGroup.empty())).remote(), timeout=30)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        pg = placement_group([{"CPU": 1, "object_store_memory": 1}], lifetime="detached")

        @ray.remote(object_store_memory=1, num_cpus=0)
        class Holder:
            pass

        holder = Holder.remote()
    texts = [str(w.message) for w in seen if w.category is DeprecationWarning]
    assert any("'object_store_memory' for bundles is deprecated" in t for t in texts), texts
    assert any("'object_store_memory' for actors is deprecated" in t for t in texts), texts
    ray.get(pg.ready(), timeout=30)
    assert pg.bundle_cache == [{"CPU": 1.0, "object_store_memory": 1.0}]
    (row,) = list_placement_groups(filters=[("is_detached", "=", "True")])
    assert row["placement_group_id"] == pg.id.hex() and row["creator_job_id"] == ray.get_runtime_context().get_job_id()
    assert row["stats"]["scheduling_state"] == "FINISHED"

    @ray.remote(num_cpus=2)
    def too_big():
        return 1

    @ray.remote(num_cpus=0)
    def parent():
        with pytest.raises(ValueError, match="cannot fit into any bundles"):
            too_big.remote()
        return True

    assert ray.get(parent.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        pg, placement_group_capture_child_tasks=True)).remote(), timeout=30)
    ray.kill(holder)
    remove_placement_group(pg)


def test_the_empty_group_is_ready_at_once(ray):
    from mpiray.util.placement_group import PlacementGroup

    empty = PlacementGroup.empty()
    assert empty.is_empty
    assert ray.get(empty.ready(), timeout=30) == empty
    assert empty.wait(0)
