"""Restore destinations through the real CLI and agent, on a local vault and on an S3
vault (moto_server): one destination only, a simulation that writes nothing, counters
that tell the truth, and size filters with units."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import grpc
import pytest

from comet.agent.client_cli import AgentClient
from comet.agent.storage.s3 import S3Config
from comet.v1 import agent_api_pb2, common_pb2
from tests.agent.restore.swapper import NOBODY, attack, stop_attack
from tests.agent.restore.swapper import state_of as canary_state
from tests.fixtures.processes import AdminCli, AgentProcess

pytestmark = pytest.mark.timeout(180)

Tree = dict[str, tuple[int, int, int, int, str]]


def tree_state(root: Path, *, skip: tuple[Path, ...] = ()) -> Tree:
    """Every entry under ``root`` (root included): mode, owner, group, mtime and content
    (a digest for files, the target for symlinks)."""
    out: Tree = {}
    if not root.exists() and not root.is_symlink():
        return out
    paths = [root, *root.rglob("*")] if root.is_dir() and not root.is_symlink() else [root]
    for path in paths:
        if any(path == s or s in path.parents for s in skip):
            continue
        st = path.lstat()
        if stat.S_ISREG(st.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        else:
            content = ""
        out[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, content)
    return out


@pytest.fixture(params=["local", "s3"])
def snap(request: pytest.FixtureRequest, alice: AgentProcess, short_tmp: Path) -> dict[str, Any]:
    source = short_tmp / "DIR"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("snapshot A\n")
    (source / "b.txt").write_text("snapshot B\n")
    (source / "c.txt").write_text("snapshot C\n")
    (source / "sub" / "zeros.bin").write_bytes(bytes(3 << 20))
    (source / "sub" / "empty").write_bytes(b"")
    os.symlink("a.txt", source / "link-to-a")
    if request.param == "local":
        alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    else:
        s3: S3Config = request.getfixturevalue("s3_bucket")
        assert s3.endpoint_url is not None
        alice.comet(
            "vault", "add", "v", "--type", "s3", "--endpoint", s3.endpoint_url,
            "--bucket", s3.bucket, "--prefix", s3.prefix, "--access-key", s3.access_key,
            "--secret-key-stdin", stdin=s3.secret_key + "\n",
        )  # fmt: skip
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    job = alice.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()
    return {"source": source, "snapshot": job["snapshot_id"], "kind": request.param}


def restore_jobs(alice: AgentProcess) -> list[Any]:
    jobs = alice.comet("history", "--json").json()
    return [j for j in jobs if j["classification"] == "restore"]


@pytest.mark.parametrize("snap", ["local"], indirect=True)  # refused before the vault is read
def test_two_destinations_are_refused_in_one_line_before_any_job(
    alice: AgentProcess, admin: AdminCli, snap: dict[str, Any], short_tmp: Path
) -> None:
    source, snapshot = snap["source"], snap["snapshot"]
    (source / "a.txt").write_text("local newer A\n")
    (source / "c.txt").unlink()
    other = short_tmp / "elsewhere"
    before = tree_state(source) | tree_state(other)
    refused = [
        ("--simulate", "--original-paths", "--overwrite"),  # the commands of issue 21
        ("--simulate", "--to", str(other)),
        ("--to", str(other), "--program", "cat", "--per-file"),
        ("--program", "cat", "--per-file", "--as-archive"),
        ("--original-paths", "--to", str(other)),
        ("--to", str(other), "--archive", "tar", "--output", str(short_tmp / "x.tar")),
        ("--simulate", "--per-file"),
        ("--simulate", "--output", str(short_tmp / "x.tar")),
        ("--simulate", "--overwrite"),
    ]
    for flags in refused:
        result = alice.comet(
            "restore", snapshot, "--vault", "v", *flags, "--wait", "--json", check=False
        )
        assert result.returncode != 0, flags
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("comet"), (flags, result.stderr)
        assert result.stdout == "", flags
    assert tree_state(source) | tree_state(other) == before
    assert not (short_tmp / "x.tar").exists()
    api_refuses_two_destinations(alice, snapshot, short_tmp)
    assert restore_jobs(alice) == []

    # The admin dispatch: refused by its parser, and by the agent for what it sends.
    device = alice.status()["device_id"]
    vault_id = alice.comet("vault", "list", "--json").json()[0]["vault_id"]
    dispatch = (
        "dispatch",
        "restore",
        "--device",
        device,
        "--vault",
        vault_id,
        "--snapshot",
        snapshot,
    )
    for flags in (("--simulate", "--to", str(other)), ("--simulate", "--original-paths")):
        result = admin(*dispatch, *flags, "--wait", check=False)
        assert result.returncode != 0 and "not allowed with argument" in result.stderr, flags
    refused_remote = admin(*dispatch, "--simulate", "--overwrite", "--wait", check=False)
    assert refused_remote.returncode != 0 and "overwrites nothing" in refused_remote.stderr
    simulated = admin(*dispatch, "--simulate", "--wait", "--json").json()
    assert simulated.get("job", simulated)["status"] == "success", simulated
    assert tree_state(source) | tree_state(other) == before


def api_refuses_two_destinations(alice: AgentProcess, snapshot: str, short_tmp: Path) -> None:
    """The same refusal from the local API itself (what the GUI and scripts call)."""
    client = AgentClient(alice.socket)
    bad = [
        common_pb2.RestoreOptions(type=common_pb2.RESTORE_TYPE_SIMULATE, original_paths=True),
        common_pb2.RestoreOptions(
            type=common_pb2.RESTORE_TYPE_SIMULATE, destination=str(short_tmp / "d")
        ),
        common_pb2.RestoreOptions(
            type=common_pb2.RESTORE_TYPE_FILES,
            destination=str(short_tmp / "d"),
            program_command="cat",
        ),
        common_pb2.RestoreOptions(
            type=common_pb2.RESTORE_TYPE_FILES,
            destination=str(short_tmp / "d"),
            original_paths=True,
        ),
        common_pb2.RestoreOptions(
            type=common_pb2.RESTORE_TYPE_PROGRAM_PER_FILE,
            program_command="cat",
            original_paths=True,
            overwrite=common_pb2.OVERWRITE_MODE_OVERWRITE,
        ),
    ]
    for options in bad:
        with pytest.raises(grpc.RpcError) as caught:
            client.api.StartRestore(
                agent_api_pb2.StartRestoreRequest(
                    vault_id="v", snapshot_id=snapshot, options=options
                ),
                timeout=60,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, options
        assert "one destination" in (caught.value.details() or ""), caught.value.details()
    assert not (short_tmp / "d").exists()


def test_simulate_writes_nothing_and_counts_what_it_fetched(
    alice: AgentProcess, snap: dict[str, Any], short_tmp: Path
) -> None:
    source, snapshot = snap["source"], snap["snapshot"]
    (source / "a.txt").write_text("local newer A\n")
    (source / "c.txt").unlink()
    # Everything under the test's root except the agent's own state and log (and the
    # vault's lock files, which a reader may take): nothing else may change.
    state = alice.state_dir
    skip = (state, alice.log, short_tmp / "vault" / "locks", short_tmp / "server")
    before = tree_state(short_tmp, skip=skip)
    job = alice.comet("restore", snapshot, "--vault", "v", "--simulate", "--wait", "--json").json()
    assert job["status"] == "success", job
    assert tree_state(short_tmp, skip=skip) == before
    assert (source / "a.txt").read_text() == "local newer A\n"
    assert not (source / "c.txt").exists()
    assert job["files"] == 5 and job["bytes"] == (3 << 20) + 3 * len("snapshot A\n")
    # 3 MiB of zeros compress to almost nothing: downloaded is what was fetched.
    assert 0 < job["downloaded_bytes"] < 200_000, job
    log = alice.comet("job", "log", job["job_id"]).stdout
    assert "as a simulation (nothing is written)" in log.splitlines()[0], log
    program_per_file_names_and_counts_what_it_skips(alice, snapshot, short_tmp)
    directory_restore_reports_the_bytes_it_fetched(alice, snap, short_tmp)


def program_per_file_names_and_counts_what_it_skips(
    alice: AgentProcess, snapshot: str, short_tmp: Path
) -> None:
    sink = short_tmp / "sink"
    sink.mkdir()
    job = alice.comet(
        "restore", snapshot, "--vault", "v", "--program",
        f'cat > "{sink}/$COMET_RESTORE_NAME"', "--per-file", "--wait", "--json",
    ).json()  # fmt: skip
    assert job["status"] == "warning", job
    assert sorted(p.name for p in sink.iterdir()) == [
        "a.txt",
        "b.txt",
        "c.txt",
        "empty",
        "zeros.bin",
    ]
    log = alice.comet("job", "log", job["job_id"]).stdout
    assert "link-to-a" in log and "symlink skipped" in log, log
    assert "; 1 skipped (0 already present and kept, 1 not restorable" in log, log


def directory_restore_reports_the_bytes_it_fetched(
    alice: AgentProcess, snap: dict[str, Any], short_tmp: Path
) -> None:
    dest = short_tmp / "dest"
    job = alice.comet(
        "restore", snap["snapshot"], "--vault", "v", "--to", str(dest), "--wait", "--json"
    ).json()
    assert job["status"] == "success", job
    assert job["bytes"] > 3 << 20 and 0 < job["downloaded_bytes"] < 200_000, job
    inner = dest / str(snap["source"]).lstrip("/")
    assert (inner / "sub" / "zeros.bin").read_bytes() == bytes(3 << 20)
    log = alice.comet("job", "log", job["job_id"]).stdout
    assert f"to {dest}" in log.splitlines()[0], log


@pytest.mark.parametrize("snap", ["local"], indirect=True)  # search is vault-independent
def test_find_size_filters_take_units_and_honour_zero(
    alice: AgentProcess, snap: dict[str, Any]
) -> None:
    def find(*flags: str) -> list[str]:
        rows = alice.comet("find", "*", "--vault", "v", *flags, "--json").json()
        return sorted(r["path"].rsplit("/", 1)[-1] for r in rows)

    assert find("--max-size", "0") == ["empty"]
    assert find("--min-size", "0", "--max-size", "0") == ["empty"]
    assert find("--min-size", "1M") == ["zeros.bin"]
    assert find("--min-size", "3MiB", "--max-size", "3M") == ["zeros.bin"]
    assert find("--min-size", "1", "--max-size", "1k") == ["a.txt", "b.txt", "c.txt"]
    assert find("--min-size", "0") == ["a.txt", "b.txt", "c.txt", "empty", "zeros.bin"]
    assert find("--min-size", "1.5GiB") == []
    bad = alice.comet("find", "*", "--vault", "v", "--max-size", "10Q", check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(240)
def test_a_raced_root_restore_output_symlinks_and_privileges_through_the_agent(
    alice: AgentProcess, short_tmp: Path
) -> None:
    """Through the real CLI and agent (running as root): a restore into a tree the user
    'nobody' owns while nobody swaps a folder for a symlink to a canary; archive
    outputs that are a planted symlink or a directory; setuid kept only on request."""
    os.chmod(short_tmp, 0o755)
    source = short_tmp / "src"
    victim = source / "victim"
    (victim / "inner").mkdir(parents=True)
    for i in range(200):
        (victim / f"f{i}.txt").write_text(f"restored {i}\n")
        (victim / "inner" / f"g{i}.txt").write_text(f"restored inner {i}\n")
    (victim / "keep.txt").write_text("restored over the canary?\n")
    tool = source / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chmod(tool, 0o4755)
    canary = short_tmp / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("canary\n")
    os.utime(canary / "keep.txt", ns=(10**9, 10**9))
    os.utime(canary, ns=(10**9, 10**9))
    before = canary_state(canary)
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    alice.comet("item", "add", "src", "--type", "files", "--include", str(source))
    snapshot = alice.comet("backup", "src", "--vault", "v", "--wait", "--json").json()[
        "snapshot_id"
    ]

    dest = short_tmp / "dest"
    inner = dest / str(source).lstrip("/")
    (inner / "victim").mkdir(parents=True)
    for p in [inner / "victim", inner, *inner.parents]:
        if p == short_tmp:
            break
        os.chown(p, NOBODY, NOBODY)
    swapper, stop = attack(inner, canary, short_tmp)
    try:
        job = alice.comet(
            "restore", snapshot, "--vault", "v", "--to", str(dest), "--overwrite", "--wait",
            "--json", check=False,
        ).json()  # fmt: skip
    finally:
        swaps = stop_attack(swapper, stop)
    assert job["status"] in ("success", "warning"), job
    assert swaps > 0 and canary_state(canary) == before
    restored_tool = inner / "tool"
    assert stat.S_IMODE(restored_tool.lstat().st_mode) == 0o755  # setuid dropped...
    log = alice.comet("job", "log", job["job_id"]).stdout
    assert "setuid/setgid bits dropped" in log and job["status"] == "warning", log

    kept = short_tmp / "kept"
    job = alice.comet(
        "restore", snapshot, "--vault", "v", "--to", str(kept), "--restore-privileged",
        "--path", str(tool), "--wait", "--json",
    ).json()  # fmt: skip
    assert job["status"] == "success", job  # ...and kept when asked for
    assert stat.S_IMODE((kept / str(tool).lstrip("/")).lstat().st_mode) == 0o4755

    out = short_tmp / "out.tar"
    os.symlink(canary / "keep.txt", out)
    folder = short_tmp / "out-dir"
    folder.mkdir()
    for target, needle in ((out, "symbolic link"), (folder, "is a directory")):
        for extra in ((), ("--overwrite",)):
            result = alice.comet(
                "restore", snapshot, "--vault", "v", "--archive", "tar", "--output",
                str(target), *extra, "--wait", check=False,
            )  # fmt: skip
            lines = result.stderr.strip().splitlines()
            assert result.returncode != 0 and len(lines) == 1 and needle in lines[0], lines
    assert os.readlink(out) == str(canary / "keep.txt") and canary_state(canary) == before
    assert list(folder.iterdir()) == []
    assert not list(short_tmp.glob(".*partial"))
