"""The database supervisor: what it reports while the database is away, and how it
restarts an embedded cluster that died (with back-off), with a fault-injecting probe
and cluster instead of a real outage (the e2e tests kill a real postmaster)."""

from __future__ import annotations

from dataclasses import dataclass, field

from comet.server.database_supervisor import DatabaseSupervisor, SupervisorPolicy


@dataclass
class Cluster:
    running: bool = True
    restarts_fail: int = 0
    restarts: int = 0

    def is_running(self) -> bool:
        return self.running

    def restart(self) -> None:
        self.restarts += 1
        if self.restarts_fail:
            self.restarts_fail -= 1
            raise RuntimeError("pre-existing shared memory block is still in use")
        self.running = True


@dataclass
class World:
    cluster: Cluster = field(default_factory=Cluster)
    now: float = 100.0
    published: list[bool] = field(default_factory=list)

    async def probe(self) -> None:
        if not self.cluster.running:
            raise ConnectionRefusedError("connection refused")

    async def publish(self, up: bool) -> None:
        self.published.append(up)


async def test_a_dead_embedded_cluster_is_restarted_with_back_off() -> None:
    world = World()
    supervisor = DatabaseSupervisor(
        world.probe,
        embedded=world.cluster,
        on_change=world.publish,
        policy=SupervisorPolicy(restart_min=1.0, restart_max=4.0),
        monotonic=lambda: world.now,
    )
    assert await supervisor.check() and supervisor.database_up and world.published == []

    world.cluster.running = False
    world.cluster.restarts_fail = 3
    assert not await supervisor.check()  # restart attempt 1 fails: next in 1 s
    assert not supervisor.database_up and world.published == [False]
    assert world.cluster.restarts == 1
    world.now += 0.5
    await supervisor.check()
    assert world.cluster.restarts == 1  # not yet
    for wait, attempts in ((0.5, 2), (2.0, 3), (4.0, 4)):  # 1, 2, then 4 s (the cap)
        world.now += wait - 0.01
        await supervisor.check()
        assert world.cluster.restarts == attempts - 1
        world.now += 0.01
        await supervisor.check()
        assert world.cluster.restarts == attempts
    assert world.cluster.running
    assert await supervisor.check() and supervisor.database_up
    assert world.published == [False, True]

    # The back-off starts over for the next outage.
    world.cluster.running = False
    world.cluster.restarts_fail = 1
    await supervisor.check()
    world.now += 1.0
    await supervisor.check()
    assert world.cluster.restarts == 6 and await supervisor.check()


async def test_an_external_database_is_only_waited_for() -> None:
    world = World()
    supervisor = DatabaseSupervisor(world.probe, on_change=world.publish)
    world.cluster.running = False
    assert not await supervisor.check() and not await supervisor.check()
    assert world.published == [False] and world.cluster.restarts == 0
    world.cluster.running = True
    assert await supervisor.check() and world.published == [False, True]
