"""The device enforces its own policy, whatever the server sends: raw commands pushed
down a real agent's live stream by a test double of the server (all server checks
bypassed) are refused by the agent's root-owned local policy and the user's privacy
setting; vault commands set by another device of the account do not run here."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from comet.agent import device_policy
from comet.agent.device_policy import DevicePolicyError, RefusedByDevicePolicyError
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc, common_pb2, control_pb2
from tests.fixtures.processes import (
    ALICE_PASSWORD,
    AgentProcess,
    wait_for,
)
from tests.security.conftest import Site
from tests.security.local_api import set_admin_view_files
from tests.security.server_double import ServerDouble

pytestmark = pytest.mark.timeout(180)


def write_policy(path: Path, text: str, *, mode: int = 0o644, uid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    os.chown(path, uid, 0)


@dataclass
class Device:
    agent: AgentProcess
    double: ServerDouble
    root: Path
    policy: Path
    source: Path
    snapshot_id: str
    vault_id: str

    def restore(self, **options: Any) -> control_pb2.CommandReply:
        return self.double.inject(
            control_pb2.Command(
                run_restore=control_pb2.RunRestoreCommand(
                    vault_id=self.vault_id,
                    snapshot_id=self.snapshot_id,
                    options=common_pb2.RestoreOptions(**options),
                )
            )
        )

    def job_log(self, job_id: str) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            log: dict[str, Any] = self.agent.comet("job", "log", job_id, "--json").json()
            return log if log["job"]["status"] not in ("running", "queued") else None

        result: dict[str, Any] = wait_for(ended, timeout=60, what=f"job {job_id} to end")
        return result


@pytest.fixture(scope="module")
def device(site: Site) -> Iterator[Device]:
    """alice's agent, logged in through the double, with one snapshot of a small folder.
    Its device policy file is absent (so the defaults apply); tests that change the
    policy or the user's settings put them back."""
    site.admin_cli("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    double = ServerDouble(site.server.url, site.credentials())
    root = site.root / "dev"
    root.mkdir()
    policy = root / "etc" / "agent.toml"
    agent = AgentProcess(root, env={"COMET_AGENT_POLICY_FILE": str(policy)})
    agent.start()
    try:
        agent.comet(
            "login",
            "--server",
            double.url,
            "--username",
            "alice",
            "--password-stdin",
            stdin=ALICE_PASSWORD + "\n",
        )
        wait_for(double.connected, timeout=30, what="the live stream through the double")
        source = root / "src"
        source.mkdir()
        (source / "secret.txt").write_text("the user's private data\n")
        vault_id = agent.comet(
            "vault", "add", "v", "--type", "local", "--path", str(root / "vault"), "--json"
        ).json()["vault_id"]
        agent.comet("item", "add", "docs", "--type", "files", "--include", str(source))
        job = agent.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()
        yield Device(agent, double, root, policy, source, job["snapshot_id"], vault_id)
    finally:
        agent.kill()
        double.stop()


@pytest.fixture
def private(device: Device) -> Iterator[Device]:
    """The device with its user keeping files from admins (the default)."""
    set_admin_view_files(device.agent, False)
    yield device


@pytest.fixture
def consenting(device: Device) -> Iterator[Device]:
    """The device with its user allowing admins to view files."""
    set_admin_view_files(device.agent, True)
    try:
        yield device
    finally:
        set_admin_view_files(device.agent, False)


def test_injected_restore_into_a_program_is_refused_by_the_device(consenting: Device) -> None:
    device = consenting  # the user consents, so only the device policy stands in the way
    marker = device.root / "pwned"
    reply = device.restore(
        type=common_pb2.RESTORE_TYPE_PROGRAM_PER_FILE, program_command=f"id > {marker}"
    )
    assert reply.error_code == "device_policy.refused", reply
    assert "remote program execution is off on this device" in reply.error
    reply = device.restore(
        type=common_pb2.RESTORE_TYPE_PROGRAM_ARCHIVE, program_command=f"cat > {marker}"
    )
    assert reply.error_code == "device_policy.refused", reply
    assert not marker.exists()
    assert "refused the remote command run_restore" in device.agent.log.read_text()

    # A backup of a Program item runs a program too.
    device.agent.comet(
        "item", "add", "dump", "--type", "program", "--command", f"id > {marker}",
        "--save-as", "dump.txt",
    )  # fmt: skip
    reply = device.double.inject(
        control_pb2.Command(
            run_backup=control_pb2.RunBackupCommand(item_id="dump", vault_id=device.vault_id)
        )
    )
    assert reply.error_code == "device_policy.refused", reply
    assert not marker.exists()


def test_injected_restores_write_only_where_the_device_allows(consenting: Device) -> None:
    device = consenting
    elsewhere = device.root / "chosen-by-an-admin"
    for options in (
        {"destination": str(elsewhere)},
        {"destination": str(device.agent.state_dir / "restores" / ".." / ".." / "x")},
        {"type": common_pb2.RESTORE_TYPE_ARCHIVE_FILE, "destination": str(device.root / "a.tar")},
    ):
        reply = device.restore(**options)
        assert reply.error_code == "device_policy.refused", (options, reply)
        assert "outside the restore directories this device allows" in reply.error
    assert not elsewhere.exists() and not (device.root / "a.tar").exists()

    # Into the device's restore directory it works.
    allowed = device.agent.state_dir / "restores" / "r1"
    reply = device.restore(destination=str(allowed))
    assert not reply.error, reply.error
    log = device.job_log(reply.job_started.job_id)
    assert log["job"]["status"] == "success"
    restored = allowed / str(device.source).lstrip("/") / "secret.txt"
    assert restored.read_text() == "the user's private data\n"


def test_the_device_keeps_a_users_files_private_from_admins(private: Device) -> None:
    device = private
    for command in (
        control_pb2.Command(
            browse_snapshot=control_pb2.BrowseSnapshotCommand(
                vault_id=device.vault_id, snapshot_id=device.snapshot_id, path="/"
            )
        ),
        control_pb2.Command(
            search_snapshots=control_pb2.SearchSnapshotsCommand(
                vault_id=device.vault_id, query=common_pb2.FindQuery(name_glob="*")
            )
        ),
        control_pb2.Command(browse_filesystem=control_pb2.BrowseFilesystemCommand(path="/")),
    ):
        reply = device.double.inject(command)
        assert reply.error_code == "private_files", reply
    reply = device.restore(destination=str(device.agent.state_dir / "restores" / "r2"))
    assert reply.error_code == "private_files", reply
    listing = device.double.inject(
        control_pb2.Command(
            list_snapshots=control_pb2.ListSnapshotsCommand(vault_id=device.vault_id)
        )
    )
    assert listing.snapshots.snapshots and not any(s.paths for s in listing.snapshots.snapshots), (
        listing
    )
    # Restoring to the original paths stays possible (nothing is shown to the admin).
    reply = device.restore(original_paths=True)
    assert not reply.error and device.job_log(reply.job_started.job_id)["job"]["status"] in (
        "success",
        "warning",
    )


def _restart(device: Device) -> None:
    device.agent.stop()
    device.agent.start()
    wait_for(lambda: device.agent.status()["connected"], timeout=30, what="reconnection")


@pytest.fixture
def permissive(consenting: Device) -> Iterator[Device]:
    """The device with a root-owned policy allowing programs and one restore dir."""
    out = consenting.root / "out"
    write_policy(consenting.policy, f'[remote]\nallow_programs = true\nrestore_dirs = ["{out}"]\n')
    _restart(consenting)
    try:
        yield consenting
    finally:
        consenting.policy.unlink()
        _restart(consenting)


def test_a_root_owned_policy_can_allow_programs_and_the_job_log_shows_the_command(
    permissive: Device,
) -> None:
    device = permissive
    out = device.root / "out"
    marker = out / "program-ran"
    out.mkdir()
    command = f"cat > {marker}"
    reply = device.restore(type=common_pb2.RESTORE_TYPE_PROGRAM_ARCHIVE, program_command=command)
    assert not reply.error, reply.error
    log = device.job_log(reply.job_started.job_id)
    assert log["job"]["status"] == "success", log
    assert any(command in entry["message"] for entry in log["entries"]), log["entries"]
    assert marker.stat().st_size > 0

    # A Program item's command is in the job log before its output is saved.
    device.agent.comet(
        "item", "add", "dump2", "--type", "program", "--command", "echo dumped",
        "--save-as", "dump2.txt",
    )  # fmt: skip
    reply = device.double.inject(
        control_pb2.Command(
            run_backup=control_pb2.RunBackupCommand(item_id="dump2", vault_id=device.vault_id)
        )
    )
    assert not reply.error, reply.error
    log = device.job_log(reply.job_started.job_id)
    messages = [entry["message"] for entry in log["entries"]]
    assert log["job"]["status"] == "success", messages
    shown = messages.index("program command: echo dumped")
    assert shown < next(i for i, m in enumerate(messages) if "saved" in m)
    # The state dir is no longer a restore directory: only what the policy names.
    reply = device.restore(destination=str(device.agent.state_dir / "restores" / "r3"))
    assert reply.error_code == "device_policy.refused"


@pytest.mark.parametrize(
    ("mode", "uid", "complaint"),
    [(0o644, 65534, "not owned by root"), (0o664, 0, "may be written by its group or others")],
)
def test_the_agent_refuses_a_policy_file_others_could_have_written(
    short_tmp: Path, mode: int, uid: int, complaint: str
) -> None:
    root = Path(tempfile.mkdtemp(dir=short_tmp))
    policy = root / "agent.toml"
    write_policy(policy, "[remote]\nallow_programs = true\n", mode=mode, uid=uid)
    agent = AgentProcess(root, env={"COMET_AGENT_POLICY_FILE": str(policy)})
    with pytest.raises(AssertionError, match="agent did not start"):
        agent.start()
    agent.kill()
    assert complaint in agent.log.read_text()
    shutil.rmtree(root, ignore_errors=True)


def _login(agent: AgentProcess, site: Site, name: str) -> None:
    agent.comet(
        "login",
        "--server",
        site.server.url,
        "--trust-fingerprint",
        site.fingerprint,
        "--username",
        "bob",
        "--password-stdin",
        "--device-name",
        name,
        stdin=ALICE_PASSWORD + "\n",
    )


def _add_vault_command(agent: AgentProcess, command: str, *, claimed_owner: str = "") -> None:
    with grpc.insecure_channel(f"unix:{agent.socket}") as channel:
        stub = agent_api_pb2_grpc.AgentApiStub(channel)
        profile = stub.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=30)
        profile.vaults[0].pre_commands.append(
            common_pb2.ProgramCommand(command=command, owner_device_id=claimed_owner)
        )
        stub.SaveProfile(agent_api_pb2.SaveProfileRequest(profile=profile), timeout=30)


def test_a_vault_command_runs_only_on_the_device_that_set_it(site: Site) -> None:
    site.admin_cli("user", "add", "bob", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    short_tmp = site.root / "bob"
    short_tmp.mkdir()
    laptop, intruder = (AgentProcess(short_tmp / n) for n in ("laptop", "intruder"))
    for agent, name in ((laptop, "laptop"), (intruder, "stolen-token")):
        agent.root.mkdir()
        agent.extra_env = {"COMET_AGENT_POLICY_FILE": str(agent.root / "none.toml")}
        agent.start()
        _login(agent, site, name)
    try:
        source = short_tmp / "src"
        source.mkdir()
        (source / "f").write_text("x")
        laptop.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
        laptop.comet("item", "add", "docs", "--type", "files", "--include", str(source))
        planted = short_tmp / "planted-by-another-device"
        # Into the shared vault, from another device that even claims to be the laptop.
        _add_vault_command(intruder, f"id > {planted}", claimed_owner=laptop.status()["device_id"])
        job = laptop.comet("backup", "docs", "--vault", "v", "--wait", "--json", check=False)
        assert not planted.exists()
        log = laptop.comet("job", "log", job.json()["job_id"], "--json").json()
        messages = [e["message"] for e in log["entries"]]
        assert any("set by another device" in m and str(planted) in m for m in messages)

        own = short_tmp / "own-command-ran"
        _add_vault_command(laptop, f"touch {own}")
        job = laptop.comet("backup", "docs", "--vault", "v", "--wait", "--json", check=False)
        log = laptop.comet("job", "log", job.json()["job_id"], "--json").json()
        messages = [e["message"] for e in log["entries"]]
        assert own.exists() and not planted.exists()
        shown = next(i for i, m in enumerate(messages) if f"touch {own}" in m)
        assert shown < next(i for i, m in enumerate(messages) if "snapshot" in m)
    finally:
        laptop.kill()
        intruder.kill()


def test_policy_file_defaults_and_mistakes(short_tmp: Path) -> None:
    state = short_tmp / "state"
    missing = device_policy.load(short_tmp / "absent.toml", state_dir=state)
    assert not missing.allow_remote_programs and missing.restore_dirs == (state / "restores",)
    with pytest.raises(RefusedByDevicePolicyError, match="remote program execution is off"):
        missing.check_program("a restore into a program")
    missing.check_restore_path(str(state / "restores" / "a" / "b"), "the restore directory")
    for outside in ("/etc/cron.d", str(state / "restores" / ".." / "keys"), "relative/dir"):
        with pytest.raises(RefusedByDevicePolicyError):
            missing.check_restore_path(outside, "the restore directory")
    # A symlink out of the restore directory does not lead out of it.
    (state / "restores").mkdir(parents=True)
    (state / "restores" / "link").symlink_to("/etc")
    with pytest.raises(RefusedByDevicePolicyError, match="outside the restore directories"):
        missing.check_restore_path(str(state / "restores" / "link" / "cron.d"), "the directory")

    path = short_tmp / "agent.toml"
    for text, complaint in (
        ("[remote\n", "not valid TOML"),
        ("[remote]\nallow_programs = 'yes'\n", "must be true or false"),
        ("[remote]\nalow_programs = true\n", r"unknown \[remote\] setting"),
        ('[remote]\nrestore_dirs = ["restores"]\n', "is not absolute"),
    ):
        write_policy(path, text)
        with pytest.raises(DevicePolicyError, match=complaint):
            device_policy.load(path, state_dir=state)
    # A symlink to a file someone else controls is not followed.
    target = short_tmp / "real.toml"
    write_policy(target, "[remote]\nallow_programs = true\n")
    path.unlink()
    path.symlink_to(target)
    with pytest.raises(DevicePolicyError, match="cannot open"):
        device_policy.load(path, state_dir=state)
