"""Login throttling against a real comet-server process: it slows guessing down
per (account, source) and per source, and nobody can lock others out with it.

Client addresses differ for real (a forwarder connects from 127.0.0.2/127.0.0.3)
or through a trusted proxy's X-Forwarded-For header (the forwarder on
PROXY_SOURCE, which the server trusts), as behind the shipped nginx config."""

from __future__ import annotations

import re
import shutil
import signal
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from comet.server import totp
from comet.v1 import admin_pb2, control_pb2
from tests.e2e.test_multi_instance import NginxProcess
from tests.security.throttle_fixtures import (
    PROXY_SOURCE,
    Client,
    GuardedServer,
    auth_key,
    guarded_server,
    login_error,
    unique_address,
)

__all__ = ["guarded_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(120)
WRONG = "not-the-password"


def test_25_failures_from_one_forwarded_address_leave_other_addresses_alone(
    guarded_server: GuardedServer,
) -> None:
    alice = guarded_server.add_user()
    proxy = Client(guarded_server.via(PROXY_SOURCE))
    attacker, owner = unique_address(), unique_address()
    codes = [
        login_error(proxy, f"x{uuid.uuid4().hex[:12]}", WRONG, forwarded_for=attacker)
        for _ in range(25)
    ]
    # 20 failures from one source are free (4 x the per-account allowance), then it waits.
    assert codes[:20] == [grpc.StatusCode.UNAUTHENTICATED] * 20
    assert codes[20:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 5
    started = time.monotonic()
    reply = proxy.login(alice, "password-1", forwarded_for=owner)
    assert reply.session_token and time.monotonic() - started < 1.0
    # The attacker's own address still waits, whoever it names; refused attempts
    # were audited under the forwarded address and not counted as failures.
    assert login_error(proxy, alice, "password-1", forwarded_for=attacker) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    failures = guarded_server.audit("action = 'login' AND source_address = %s", attacker)
    assert len(failures) == 20 and not any(row[4] for row in failures)
    throttled = guarded_server.audit("action = 'login.throttled' AND source_address = %s", attacker)
    assert len(throttled) == 6
    proxy.close()


def test_behind_the_shipped_nginx_config_one_address_cannot_lock_out_another(
    guarded_server: GuardedServer,
) -> None:
    """deploy/nginx/comet.conf in a real nginx; nginx reaches the server from the
    trusted proxy address, and clients reach nginx from 127.0.0.8 and 127.0.0.9.
    (Every test here uses addresses of its own: back-off is per address.)"""
    alice = guarded_server.add_user()
    root = Path(tempfile.mkdtemp(prefix="ng-"))
    nginx = NginxProcess(root / "n", [guarded_server.process.port])
    try:
        # grpc_bind: the upstream connections come from the address the server trusts.
        conf = nginx.root / "comet.conf"
        text, count = re.subn(
            r"(?m)^(\s*)grpc_pass (.*)$",
            rf"\1grpc_pass \2\n\1grpc_bind {PROXY_SOURCE};",
            conf.read_text(),
        )
        assert count == 1
        conf.write_text(text)
        nginx.proc.send_signal(signal.SIGHUP)  # reload; poll until new workers serve
        cert = (nginx.root / "tls" / "server.crt").read_bytes()  # nginx terminates TLS
        probe = Client(guarded_server.via("127.0.0.7", nginx.port), tls_root=cert)
        # Each probe is a failed login from one address, so the server's back-off
        # slows the later ones: on a loaded machine 10 s was once not enough.
        deadline = time.monotonic() + 45
        while True:
            name = f"probe{uuid.uuid4().hex[:8]}"
            login_error(probe, name, WRONG)
            if guarded_server.audit("target = %s AND source_address = '127.0.0.7'", name):
                break
            assert time.monotonic() < deadline, "nginx did not pass the client address on"
            time.sleep(0.2)
        probe.close()
        attacker = Client(guarded_server.via("127.0.0.8", nginx.port), tls_root=cert)
        owner = Client(guarded_server.via("127.0.0.9", nginx.port), tls_root=cert)
        codes = [login_error(attacker, f"x{uuid.uuid4().hex[:12]}", WRONG) for _ in range(25)]
        assert codes[:20] == [grpc.StatusCode.UNAUTHENTICATED] * 20
        assert codes[20:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 5
        started = time.monotonic()
        assert owner.login(alice, "password-1").session_token
        assert time.monotonic() - started < 1.0
        rows = guarded_server.audit("target = %s AND action = 'login'", alice)
        assert [(r[3], r[4]) for r in rows] == [("127.0.0.9", True)]
        attacker.close()
        owner.close()
    finally:
        nginx.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_forwarded_headers_count_only_from_a_trusted_proxy(
    guarded_server: GuardedServer,
) -> None:
    """A client that is not the proxy cannot pick its address by sending the header."""
    spoofer = Client(guarded_server.via("127.0.0.4"))
    name = f"x{uuid.uuid4().hex[:12]}"
    assert login_error(spoofer, name, WRONG, forwarded_for=unique_address()) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # X-Forwarded-For's left part is the client's own words: the proxy's right-most
    # entry counts, not a forged one on the left.
    proxy = Client(guarded_server.via(PROXY_SOURCE))
    real = unique_address()
    assert login_error(proxy, name, WRONG, forwarded_for=f"1.2.3.4, {real}") == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    rows = guarded_server.audit("action = 'login' AND target = %s", name)
    assert [row[3] for row in rows] == ["127.0.0.4", real]
    spoofer.close()
    proxy.close()


def test_6_failures_for_an_account_from_one_source_do_not_lock_its_owner_out(
    guarded_server: GuardedServer,
) -> None:
    bob = guarded_server.add_user()
    attacker = Client(guarded_server.via("127.0.0.2"))
    owner = Client(guarded_server.via("127.0.0.3"))
    codes = [login_error(attacker, bob, WRONG) for _ in range(6)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    started = time.monotonic()
    assert owner.login(bob, "password-1").device_token
    assert time.monotonic() - started < 1.0
    # The guessing source waits even with the right password.
    assert login_error(attacker, bob, "password-1") == grpc.StatusCode.RESOURCE_EXHAUSTED
    rows = guarded_server.audit("target = %s AND action LIKE 'login%%'", bob)
    assert [(r[1], r[3], r[4]) for r in rows] == [
        *[("login", "127.0.0.2", False)] * 5,
        ("login.throttled", "127.0.0.2", False),
        ("login", "127.0.0.3", True),
        ("login.throttled", "127.0.0.2", False),
    ]
    attacker.close()
    owner.close()


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_a_cheap_call_stays_fast_while_20_wrong_password_logins_run(
    guarded_server: GuardedServer,
) -> None:
    """Password hashing happens off the event loop. With the hash on the loop a cheap
    call waits behind hashes: median ~500 ms, p90 ~600 ms here. Off the loop: median
    ~20 ms. The tail is not asserted at p99: on a loaded 2-core CI machine the other
    test worker alone pushed single calls past 200 ms. A round that misses is measured
    again, up to 3 rounds."""
    carol = guarded_server.add_user()
    admin_md = (("authorization", f"Bearer {guarded_server.root_token}"),)
    probe = Client(guarded_server.direct)
    target = guarded_server.via(PROXY_SOURCE)
    key = auth_key(WRONG)

    def cheap_call() -> float:
        started = time.perf_counter()
        probe.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=admin_md, timeout=10)
        return time.perf_counter() - started

    for _ in range(20):  # warms the channel and the server's pools
        cheap_call()
    rounds = []
    for _ in range(3):
        stop = threading.Event()
        done = [0]

        def hammer(stop: threading.Event, done: list[int]) -> None:
            client = Client(target)
            while not stop.is_set():
                # A fresh forwarded address each time: no back-off, every login hashes.
                try:
                    client.login(carol, WRONG, forwarded_for=unique_address(), key=key)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
                    done[0] += 1
            client.close()

        workers = [threading.Thread(target=hammer, args=(stop, done)) for _ in range(20)]
        for w in workers:
            w.start()
        try:
            time.sleep(0.5)
            before = done[0]
            latencies = []
            # At least 100 probes, and on until 20 logins have hashed meanwhile: a
            # slow or busy machine hashes fewer a second, and the probes must
            # overlap real login load however long that takes.
            deadline = time.monotonic() + 30
            while len(latencies) < 100 or (done[0] - before < 20 and time.monotonic() < deadline):
                latencies.append(cheap_call())
                time.sleep(0.01)
            during = done[0] - before
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=30)
        assert during >= 20, "the logins did not run alongside"
        ordered = sorted(latencies)
        median, p90 = statistics.median(ordered), ordered[int(len(ordered) * 0.9)]
        rounds.append((p90, median))
        print(
            f"p90 {p90 * 1000:.1f} ms, median {median * 1000:.1f} ms, p99 "
            f"{_p99(ordered) * 1000:.1f} ms, {during} failed logins meanwhile"
        )
        if p90 <= 0.150 and median <= 0.050:
            break
    probe.close()
    p90, median = min(rounds)
    assert p90 <= 0.150 and median <= 0.050, f"(p90, median) of a cheap call: {rounds}"


def test_unknown_usernames_cost_what_known_ones_do(guarded_server: GuardedServer) -> None:
    dave = guarded_server.add_user()
    proxy = Client(guarded_server.via(PROXY_SOURCE))
    key = auth_key(WRONG)
    known: list[float] = []
    unknown: list[float] = []
    messages = set()

    def timed(name: str) -> float:
        started = time.perf_counter()
        try:
            proxy.login(name, WRONG, forwarded_for=unique_address(), key=key)
        except grpc.RpcError as e:
            messages.add((e.code(), e.details()))  # type: ignore[attr-defined]
        return time.perf_counter() - started

    for _ in range(3):  # warm-up
        timed(dave)
    for i in range(100):  # interleaved, in turn first, so machine noise falls on both alike
        stranger = f"nobody{i}{uuid.uuid4().hex[:6]}"
        if i % 2:
            unknown.append(timed(stranger))
            known.append(timed(dave))
        else:
            known.append(timed(dave))
            unknown.append(timed(stranger))
    proxy.close()
    k, u = statistics.median(known), statistics.median(unknown)
    print(f"median known {k * 1000:.1f} ms, unknown {u * 1000:.1f} ms")
    assert messages == {(grpc.StatusCode.UNAUTHENTICATED, "wrong username or password")}
    assert k > 0.010, "the server-side hash did not run"
    assert abs(k - u) <= 0.10 * max(k, u), (k, u)


def test_totp_disable_is_throttled_and_audited(guarded_server: GuardedServer) -> None:
    erin = guarded_server.add_user()
    device = Client(guarded_server.via("127.0.0.6"))
    token = device.login(erin, "password-1").device_token
    md = (("authorization", f"Bearer {token}"),)
    enrolment = device.auth.BeginTotpEnrolment(
        control_pb2.BeginTotpEnrolmentRequest(), metadata=md, timeout=10
    )
    code = totp.code_at(enrolment.secret, datetime.now(UTC))
    device.auth.ConfirmTotpEnrolment(
        control_pb2.ConfirmTotpEnrolmentRequest(code=code), metadata=md, timeout=10
    )
    wrong = "000000" if code != "000000" else "111111"
    codes = []
    for _ in range(6):
        with pytest.raises(grpc.RpcError) as info:
            device.auth.DisableTotp(
                control_pb2.DisableTotpRequest(code=wrong), metadata=md, timeout=10
            )
        codes.append(info.value.code())  # type: ignore[attr-defined]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    # Even the right code waits now; the code used to enrol cannot be replayed anyway.
    with pytest.raises(grpc.RpcError) as info:
        device.auth.DisableTotp(
            control_pb2.DisableTotpRequest(code=totp.code_at(enrolment.secret, datetime.now(UTC))),
            metadata=md,
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    rows = guarded_server.audit("target = %s AND action LIKE 'totp%%'", erin)
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("totp.enable", "127.0.0.6", True),
        *[("totp.disable", "127.0.0.6", False)] * 5,
        *[("totp.disable.throttled", "127.0.0.6", False)] * 2,
    ]
    device.close()
