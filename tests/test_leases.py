"""Per-group leases with fencing tokens (reconciler/state/leases.py), on a real PostgreSQL:
acquire, renew and release; tokens that only grow; expiry by the database's clock; eight
racers and one winner; leases spread over replicas and moving when one stops; and fencing
against a real frozen process (SIGSTOP), which can never write once its lease moved on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from reconciler.errors import StoreUnavailable
from reconciler.state.database import PostgresDatabase
from reconciler.state.leases import (
    Lease,
    LeaseLost,
    PostgresLeases,
    fair_share,
    new_holder_id,
)
from tests.lease_child import DECISIONS_TABLE, write_decision
from tests.postgres_harness import wait_until

ROOT = Path(__file__).resolve().parent.parent
SHORT = timedelta(seconds=1)
LONG = timedelta(seconds=60)


@pytest.fixture
def leases(postgres_url: str) -> Iterator[PostgresLeases]:
    with PostgresLeases(postgres_url, SHORT) as opened:
        yield opened


def database_now(url: str):
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute("SELECT clock_timestamp()").fetchone()[0]


def wait_expired(leases: PostgresLeases, group: str) -> None:
    """Until the database's clock says the group's lease expired."""
    wait_until(lambda: group not in leases.leases(), timeout=30)


def lease_rows(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT group_name, holder, token FROM group_leases ORDER BY group_name"
        ).fetchall()
    return [(str(g), str(h), int(t)) for g, h, t in rows]


def decisions(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute("SELECT group_name, holder, token FROM decisions_test").fetchall()
    return [(str(g), str(h), int(t)) for g, h, t in rows]


# acquire, renew, release


def test_a_free_group_is_acquired_with_token_one_expiring_by_the_database_clock(
    leases: PostgresLeases, postgres_url: str
) -> None:
    before = database_now(postgres_url)
    lease = leases.acquire("edge", "replica-a")
    after = database_now(postgres_url)

    assert lease is not None
    assert (lease.group, lease.holder, lease.token) == ("edge", "replica-a", 1)
    assert before + SHORT <= lease.expires_at <= after + SHORT
    assert lease.expires_at.utcoffset() == timedelta(0)
    assert leases.leases() == {"edge": lease}


def test_the_holder_reacquiring_or_renewing_keeps_its_token_and_extends_the_lease(
    leases: PostgresLeases,
) -> None:
    first = leases.acquire("edge", "replica-a")
    assert first is not None
    again = leases.acquire("edge", "replica-a")
    renewed = leases.renew(first)

    assert again is not None
    assert renewed is not None
    assert again.token == renewed.token == first.token == 1
    assert first.expires_at < again.expires_at < renewed.expires_at


def test_a_live_lease_cannot_be_taken_by_another_holder(leases: PostgresLeases) -> None:
    held = leases.acquire("edge", "replica-a")

    assert leases.acquire("edge", "replica-b") is None
    assert leases.leases() == {"edge": held}


def test_tokens_grow_with_every_new_holder_and_are_never_reused(
    leases: PostgresLeases, postgres_url: str
) -> None:
    tokens = []
    for holder in ["replica-a", "replica-b", "replica-a", "replica-c"]:
        lease = leases.acquire("edge", holder)
        assert lease is not None, holder
        tokens.append(lease.token)
        leases.release(lease)
        assert "edge" not in leases.leases()

    assert tokens == [1, 2, 3, 4]
    assert lease_rows(postgres_url) == [("edge", "replica-c", 4)]  # one row, kept


def test_tokens_are_per_group(leases: PostgresLeases) -> None:
    a = leases.acquire("edge", "replica-a")
    assert a is not None
    leases.release(a)
    assert leases.acquire("edge", "replica-b") == leases.leases()["edge"]

    core = leases.acquire("core", "replica-a")
    assert core is not None
    assert (core.token, leases.leases()["edge"].token) == (1, 2)


def test_renewing_a_lease_that_was_taken_over_returns_none(leases: PostgresLeases) -> None:
    old = leases.acquire("edge", "replica-a")
    assert old is not None
    leases.release(old)
    new = leases.acquire("edge", "replica-b")
    assert new is not None

    assert leases.renew(old) is None
    assert leases.acquire("edge", "replica-a") is None
    assert leases.leases() == {"edge": new}


def test_releasing_a_lost_lease_leaves_the_new_holder_alone(leases: PostgresLeases) -> None:
    old = leases.acquire("edge", "replica-a")
    assert old is not None
    leases.release(old)
    new = leases.acquire("edge", "replica-b")

    leases.release(old)

    assert leases.leases() == {"edge": new}


def test_a_lease_expires_by_the_database_clock_then_passes_to_the_next_token(
    leases: PostgresLeases,
) -> None:
    old = leases.acquire("edge", "replica-a")
    assert old is not None
    assert leases.acquire("edge", "replica-b") is None

    wait_expired(leases, "edge")
    new = leases.acquire("edge", "replica-b")

    assert new is not None
    assert (new.holder, new.token) == ("replica-b", 2)
    assert leases.renew(old) is None


def test_renewing_an_expired_lease_nobody_took_keeps_its_token(leases: PostgresLeases) -> None:
    lease = leases.acquire("edge", "replica-a")
    assert lease is not None
    wait_expired(leases, "edge")

    renewed = leases.renew(lease)

    assert renewed is not None
    assert renewed.token == lease.token
    assert leases.leases() == {"edge": renewed}


def test_an_unreachable_database_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="lease database unavailable"):
        PostgresLeases("postgresql://postgres@127.0.0.1:1/none?connect_timeout=1", SHORT)


def test_holder_ids_are_unique_to_a_process_and_differ_per_call() -> None:
    first, second = new_holder_id(), new_holder_id()
    assert first != second
    assert f":{os.getpid()}:" in first


def test_the_ttl_must_be_positive(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        PostgresLeases(postgres_url, timedelta(0))


# concurrency


def race(
    replica: PostgresLeases,
    holder: str,
    start: threading.Barrier,
    won: list[Lease | None],
    index: int,
) -> None:
    start.wait()
    won[index] = replica.acquire("edge", holder)


def test_eight_racers_for_one_group_get_exactly_one_holder(postgres_url: str) -> None:
    # eight threads over four instances: racing replicas, and threads sharing one instance
    # opened at once, too: creating the tables must not race
    with ThreadPoolExecutor(max_workers=4) as pool:
        replicas = list(pool.map(lambda _: PostgresLeases(postgres_url, SHORT), range(4)))
    try:
        for round_number, expected_token in [(1, 1), (2, 2)]:
            won: list[Lease | None] = [None] * 8
            start = threading.Barrier(len(won))
            threads = [
                threading.Thread(
                    target=race, args=(replicas[i % 4], f"r{round_number}-{i}", start, won, i)
                )
                for i in range(len(won))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)

            winners = [lease for lease in won if lease is not None]
            assert len(winners) == 1, won
            assert winners[0].token == expected_token
            assert replicas[0].leases() == {"edge": winners[0]}
            wait_expired(replicas[0], "edge")
    finally:
        for replica in replicas:
            replica.close()


# spreading


@pytest.mark.parametrize(
    ("groups", "live", "shares"),
    [
        (10, ["a", "b", "c"], [4, 3, 3]),
        (10, ["c", "a", "b"], [4, 3, 3]),
        (10, ["a", "b"], [5, 5]),
        (2, ["a", "b", "c"], [1, 1, 0]),
        (0, ["a"], [0]),
    ],
)
def test_the_fair_share_splits_evenly_the_remainder_to_the_first(
    groups: int, live: list[str], shares: list[int]
) -> None:
    assert [fair_share(groups, live, holder) for holder in sorted(live)] == shares
    assert sum(shares) == groups


def test_a_replica_missing_from_the_live_list_counts_itself() -> None:
    assert fair_share(10, ["a", "b"], "c") == 3


def held_by(leases: PostgresLeases, groups: list[str]) -> Counter[str]:
    current = leases.leases()
    assert set(current) == set(groups), "every group held"
    return Counter(lease.holder for lease in current.values())


def test_leases_spread_over_three_replicas_and_move_when_one_stops(postgres_url: str) -> None:
    groups = [f"group-{n:02}" for n in range(10)]
    ttl = timedelta(seconds=2)
    with PostgresLeases(postgres_url, ttl) as leases:
        assert leases.renew_interval == ttl / 3
        for _round in range(3):
            for replica in ["r1", "r2", "r3"]:
                leases.balance(groups, replica)
        assert held_by(leases, groups) == {"r1": 4, "r2": 3, "r3": 3}

        # r3 stops; the others go on every ttl/3 until its leases lapse by the db clock
        stopped = {lease.group for lease in leases.leases().values() if lease.holder == "r3"}
        while any(lease.holder == "r3" for lease in leases.leases().values()):
            for replica in ["r1", "r2"]:
                leases.balance(groups, replica)
            time.sleep(leases.renew_interval.total_seconds())
        assert leases.live_replicas() == ["r1", "r2"]

        # one round later every group is held again, split between the survivors
        held = {replica: leases.balance(groups, replica) for replica in ["r1", "r2"]}
        assert held_by(leases, groups) == {"r1": 5, "r2": 5}
        moved = {lease.group for lease in held["r1"] + held["r2"]} & stopped
        assert moved == stopped
        tokens = {lease.group: lease.token for lease in leases.leases().values()}
        assert all(tokens[group] > 1 for group in stopped)


def test_a_replica_gives_back_leases_above_its_share_when_another_joins(
    postgres_url: str,
) -> None:
    groups = ["a", "b", "c", "d"]
    with PostgresLeases(postgres_url, timedelta(seconds=30)) as leases:
        assert len(leases.balance(groups, "r1")) == 4  # alone: everything
        assert leases.balance(groups, "r2") == []  # all held
        kept = leases.balance(groups, "r1")
        taken = leases.balance(groups, "r2")

        assert (len(kept), len(taken)) == (2, 2)
        assert {lease.group for lease in kept + taken} == set(groups)
        assert held_by(leases, groups) == {"r1": 2, "r2": 2}


def test_balance_releases_leases_of_groups_that_are_gone(postgres_url: str) -> None:
    with PostgresLeases(postgres_url, timedelta(seconds=30)) as leases:
        leases.balance(["a", "b"], "r1")
        assert [lease.group for lease in leases.balance(["a"], "r1")] == ["a"]
        assert set(leases.leases()) == {"a"}


# fencing, in one process


@pytest.fixture
def decisions_table(postgres_url: str) -> str:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(DECISIONS_TABLE)
    return postgres_url


def test_a_fenced_write_under_the_current_lease_commits(
    leases: PostgresLeases, decisions_table: str
) -> None:
    lease = leases.acquire("edge", "replica-a")
    assert lease is not None

    write_decision(decisions_table, lease, leases.fence(lease))

    assert decisions(decisions_table) == [("edge", "replica-a", 1)]


@pytest.mark.parametrize("how", ["released", "expired", "taken over"])
def test_a_fenced_write_under_a_lost_lease_raises_and_writes_nothing(
    leases: PostgresLeases, decisions_table: str, how: str
) -> None:
    lease = leases.acquire("edge", "replica-a")
    assert lease is not None
    if how == "released":
        leases.release(lease)
    else:
        wait_expired(leases, "edge")
        if how == "taken over":
            assert leases.acquire("edge", "replica-b") is not None

    with pytest.raises(LeaseLost, match=r"'replica-a' no longer holds .* 'edge' \(token 1\)"):
        write_decision(decisions_table, lease, leases.fence(lease))

    assert decisions(decisions_table) == []


def test_a_takeover_after_a_repeatable_read_snapshot_is_lease_lost(
    leases: PostgresLeases, decisions_table: str
) -> None:
    lease = leases.acquire("edge", "replica-a")
    assert lease is not None
    with psycopg.connect(decisions_table) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.execute("SELECT 1")  # the snapshot still shows replica-a's live lease
        leases.release(lease)
        assert leases.acquire("edge", "replica-b") is not None
        with pytest.raises(LeaseLost):
            leases.fence(lease)(connection)
        connection.rollback()
    assert decisions(decisions_table) == []


def test_by_default_a_takeover_gives_up_waiting_for_a_fenced_writer(
    leases: PostgresLeases, postgres_url: str
) -> None:
    lease = leases.acquire("edge", "replica-a")
    assert lease is not None
    # A writer whose fenced transaction is not cut short (its idle limit is longer than the
    # wait), to see what the acquiring side does about a locked row.
    patient = PostgresLeases(postgres_url, SHORT, fence_idle_limit=LONG)
    with patient, psycopg.connect(postgres_url) as connection, connection.transaction():
        patient.fence(lease)(connection)
        wait_expired(leases, "edge")
        assert leases.acquire("edge", "replica-b") is None  # row locked past the lock timeout
    taken = leases.acquire("edge", "replica-b")
    assert taken is not None
    assert taken.token == 2


def test_lease_lost_is_a_store_unavailable() -> None:
    assert issubclass(LeaseLost, StoreUnavailable)


def test_a_fence_outside_a_transaction_is_refused(
    leases: PostgresLeases, postgres_url: str
) -> None:
    lease = leases.acquire("edge", "replica-a")
    assert lease is not None
    with (
        psycopg.connect(postgres_url, autocommit=True) as connection,
        pytest.raises(RuntimeError, match="inside the transaction"),
    ):
        leases.fence(lease)(connection)


def test_a_fence_runs_on_a_cursor_too(leases: PostgresLeases, postgres_url: str) -> None:
    lease = leases.acquire("edge", "replica-a")
    assert lease is not None
    leases.release(lease)
    with (
        psycopg.connect(postgres_url) as connection,
        connection.cursor() as cursor,
        pytest.raises(LeaseLost),
    ):
        leases.fence(lease)(cursor)


# fencing against a real frozen process


class Child:
    """tests/lease_child.py in a subprocess, driven through signal files."""

    def __init__(
        self, url: str, group: str, mode: str, directory: Path, ttl: float, idle: float
    ) -> None:
        self.directory = directory
        self.log = (directory / "child.log").open("w")
        arguments = [url, group, "child", str(ttl), mode, str(directory), str(idle)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.lease_child", *arguments],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_signal(self, name: str) -> str:
        path = self.directory / name
        wait_until(lambda: path.exists() or self.process.poll() is not None, timeout=60)
        assert path.exists(), (self.directory / "child.log").read_text()
        return path.read_text()

    def send(self, name: str) -> None:
        (self.directory / name).write_text("")

    def finish(self) -> int:
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=60)
        self.log.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    children: list[Child] = []

    def start(url: str, mode: str, ttl: float = SHORT.total_seconds(), idle: float = 0) -> Child:
        """``idle``: how long its fenced transaction may sit idle (0: the default, ttl/2)."""
        directory = tmp_path / f"child{len(children)}"
        directory.mkdir()
        child = Child(url, "edge", mode, directory, ttl, idle)
        children.append(child)
        return child

    yield start
    for child in children:
        child.close()


def test_the_child_writes_its_decision_while_it_holds_the_lease(
    decisions_table: str, spawn
) -> None:
    child = spawn(decisions_table, "write-later", ttl=60.0)
    assert child.wait_signal("acquired") == "1"

    child.send("go")

    assert child.wait_signal("result") == "written"
    assert child.finish() == 0
    assert decisions(decisions_table) == [("edge", "child", 1)]


def test_a_frozen_replica_whose_lease_was_taken_over_can_never_write(
    leases: PostgresLeases, decisions_table: str, spawn
) -> None:
    child = spawn(decisions_table, "write-later")
    assert child.wait_signal("acquired") == "1"
    child.process.send_signal(signal.SIGSTOP)

    wait_expired(leases, "edge")
    with PostgresLeases(decisions_table, LONG) as replica_b:
        lease_b = replica_b.acquire("edge", "replica-b")
        assert lease_b is not None
        assert lease_b.token == 2
        write_decision(decisions_table, lease_b, replica_b.fence(lease_b))

    child.process.send_signal(signal.SIGCONT)
    child.send("go")

    result = child.wait_signal("result")
    assert result.startswith("lost: "), result
    assert "'child' no longer holds the lease on group 'edge' (token 1)" in result
    assert child.finish() == 0
    assert decisions(decisions_table) == [("edge", "replica-b", 2)]


def waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def acquire_in_background(replica: PostgresLeases) -> tuple[threading.Thread, list[Lease | None]]:
    answer: list[Lease | None] = []
    thread = threading.Thread(target=lambda: answer.append(replica.acquire("edge", "replica-b")))
    thread.start()
    return thread, answer


def test_a_writer_frozen_inside_its_fenced_transaction_holds_off_the_takeover_until_killed(
    leases: PostgresLeases, decisions_table: str, spawn
) -> None:
    child = spawn(decisions_table, "hold-fence", idle=LONG.total_seconds())
    assert child.wait_signal("fenced") == "1"
    child.process.send_signal(signal.SIGSTOP)
    wait_expired(leases, "edge")  # expired by the clock, but its row is locked

    with PostgresLeases(decisions_table, LONG, lock_timeout=LONG) as replica_b:
        thread, answer = acquire_in_background(replica_b)
        wait_until(lambda: waiting_on_a_lock(decisions_table), timeout=30)
        assert thread.is_alive()
        assert answer == []

        child.process.kill()  # SIGKILL: its connection drops, its transaction rolls back
        child.process.wait(timeout=60)
        thread.join(timeout=60)

        assert len(answer) == 1
        lease_b = answer[0]
        assert lease_b is not None
        assert (lease_b.holder, lease_b.token) == ("replica-b", 2)
        write_decision(decisions_table, lease_b, replica_b.fence(lease_b))

    assert decisions(decisions_table) == [("edge", "replica-b", 2)]


def test_by_default_a_writer_frozen_inside_its_fence_is_cut_off_and_the_takeover_goes_on(
    leases: PostgresLeases, decisions_table: str, spawn
) -> None:
    """The same freeze with the fence's own idle limit (half the 1 s ttl): the server ends
    the frozen writer's session, so the takeover needs no SIGKILL, and nothing the writer
    did in that transaction is kept."""
    child = spawn(decisions_table, "hold-fence")
    assert child.wait_signal("fenced") == "1"
    child.process.send_signal(signal.SIGSTOP)
    wait_expired(leases, "edge")

    with PostgresLeases(decisions_table, LONG, lock_timeout=LONG) as replica_b:
        lease_b = replica_b.acquire("edge", "replica-b")
        assert lease_b is not None
        assert (lease_b.holder, lease_b.token) == ("replica-b", 2)
        write_decision(decisions_table, lease_b, replica_b.fence(lease_b))

    child.process.send_signal(signal.SIGCONT)
    child.send("go")
    child.finish()  # its insert meets a session the server ended
    assert decisions(decisions_table) == [("edge", "replica-b", 2)]


def test_a_takeover_gives_up_after_the_lock_timeout_and_the_resumed_writer_commits_first(
    leases: PostgresLeases, decisions_table: str, spawn
) -> None:
    child = spawn(decisions_table, "hold-fence", idle=LONG.total_seconds())
    assert child.wait_signal("fenced") == "1"
    child.process.send_signal(signal.SIGSTOP)
    wait_expired(leases, "edge")

    with PostgresLeases(decisions_table, LONG, lock_timeout=timedelta(milliseconds=300)) as b:
        assert b.acquire("edge", "replica-b") is None  # the frozen writer still locks it

        child.process.send_signal(signal.SIGCONT)
        child.send("go")
        assert child.wait_signal("result") == "written"
        assert child.finish() == 0

        lease_b = b.acquire("edge", "replica-b")
        assert lease_b is not None
        assert lease_b.token == 2
        write_decision(decisions_table, lease_b, b.fence(lease_b))

    # the old holder's decision committed before the takeover, never after it
    assert decisions(decisions_table) == [("edge", "child", 1), ("edge", "replica-b", 2)]


def test_renew_all_renews_one_holders_leases_in_one_statement_and_skips_lost_ones(
    postgres_url: str,
) -> None:
    with PostgresLeases(postgres_url, timedelta(seconds=30)) as leases:
        a, b = leases.acquire("a", "r1"), leases.acquire("b", "r1")
        assert a is not None
        assert b is not None
        leases.release(b)
        assert leases.acquire("b", "r2") is not None  # b is taken over: r1's token is stale
        renewed = leases.renew_all([a, b])
        assert [(lease.group, lease.token) for lease in renewed] == [("a", a.token)]
        assert renewed[0].expires_at >= a.expires_at
        with pytest.raises(ValueError, match="one holder"):
            leases.renew_all([a, Lease("c", "r2", 1, a.expires_at)])


def row_lock_is_free(url: str, group: str) -> bool:
    with psycopg.connect(url, autocommit=True) as connection:
        try:
            with connection.transaction():
                connection.execute(
                    "SELECT 1 FROM group_leases WHERE group_name = %s FOR UPDATE NOWAIT", (group,)
                )
        except psycopg.errors.LockNotAvailable:
            return False
    return True


def pause_inside_a_write(
    url: str, fence: Callable[[psycopg.Connection], None] | None, freed: list[bool]
) -> None:
    """In one transaction, run ``fence`` (or lock the lease row plainly), pause 1.5 s
    between two statements, then go on; ``freed`` gets whether another session could lock
    the row during the pause."""
    database = PostgresDatabase(url)
    try:
        with database.transaction() as session:
            if fence is not None:
                fence(session.connection)
            else:
                session.execute(
                    "SELECT 1 FROM group_leases WHERE group_name = ? FOR UPDATE", ("edge",)
                )
            assert not row_lock_is_free(url, "edge")
            time.sleep(1.5)  # paused between two statements of its write
            freed.append(row_lock_is_free(url, "edge"))
            session.execute("SELECT 1")
        assert database.execute("SELECT 1") == [(1,)]  # the pool gives a fresh session
    finally:
        database.close()


def test_a_writer_paused_inside_its_fenced_transaction_loses_its_session_not_the_group(
    leases: PostgresLeases, postgres_url: str
) -> None:
    """The fence limits its own transaction's idle time to half the ttl (0.5 s here): a
    replica frozen mid-write frees its lease row, so the survivors take the group over on
    time, and its own write fails whole when it resumes."""
    lease = leases.acquire("edge", "writer")
    assert lease is not None
    freed: list[bool] = []
    with pytest.raises(StoreUnavailable, match=r"idle-in-transaction|terminat"):
        pause_inside_a_write(postgres_url, leases.fence(lease), freed)
    assert freed == [True]  # free for a takeover while the writer was paused


def test_without_the_fence_a_paused_writer_keeps_the_row_locked(
    leases: PostgresLeases, postgres_url: str
) -> None:
    """The limit is the fenced transaction's alone: other writers of the pool (the report
    writer, a migration) may pause without losing their session."""
    assert leases.acquire("edge", "writer") is not None
    freed: list[bool] = []
    pause_inside_a_write(postgres_url, None, freed)
    assert freed == [False]


def test_the_limit_ends_with_the_fenced_transaction(
    leases: PostgresLeases, postgres_url: str
) -> None:
    lease = leases.acquire("edge", "writer")
    assert lease is not None
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        with connection.transaction():
            leases.fence(lease)(connection)
            inside = connection.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        after = connection.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    assert (inside, after) == (("500ms",), ("0",))
