"""Files restored into folders the restore made get their mode when created and keep
their creator as owner when that is theirs: no chmod or chown for them, and still the
exact metadata of the source wherever the shortcut would not give it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.repository import Repository
from comet.agent.restore import DirectoryTarget, run_restore
from comet.agent.restore import directory as directory_module
from tests.agent.restore.compare import compare_trees, walk

OPTIONS = BackupOptions("item", "device")
PLAIN = {"rw-r--r--": 0o644, "rwxr-xr-x": 0o755, "rw-------": 0o600}
# Not owner-writable, stripped by the umask, a special bit: each needs its chmod.
OTHER = {"r--r--r--": 0o444, "rw-rw-rw-": 0o666, "sticky": 0o1644}


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _source(root: Path) -> Path:
    src = root / "src"
    for folder in ("one", "one/two"):
        (src / folder).mkdir(parents=True)
        for name, mode in {**PLAIN, **OTHER}.items():
            path = src / folder / name
            path.write_bytes(name.encode() * 100)
            os.chmod(path, mode)
    return src


def _calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """The paths of the objects ``os.<name>`` is called on during the restore."""
    seen: list[str] = []
    real = getattr(os, name)

    def spy(fd: int, *args: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd, *args)

    monkeypatch.setattr(directory_module.os, name, spy)
    return seen


def _restore(tmp_path: Path, repo: Repository, src: Path, dest: Path) -> Path:
    snapshot_id = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest))
    assert not result.warnings, result.warnings
    return dest / str(src).lstrip("/")


def test_plain_files_in_made_folders_get_no_chmod_or_chown(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    src = _source(tmp_path)
    chmods, chowns = _calls(monkeypatch, "fchmod"), _calls(monkeypatch, "fchown")
    out = _restore(tmp_path, repo, src, tmp_path / "dest")
    compare_trees(src, out)
    files = [os.path.basename(p).split(".comet-")[0][1:] for p in chmods if ".comet-" in p]
    assert sorted(files) == sorted(2 * list(OTHER))  # only those that need it
    assert not [p for p in chowns if ".comet-" in p]  # ours already (the test runs as root)
    assert len([p for p in chowns if ".comet-" not in p]) >= 2  # folders: all the way


def test_files_take_their_group_under_a_setgid_destination(
    tmp_path: Path, repo: Repository, umask_022: None
) -> None:
    assert os.geteuid() == 0, "only root restores ownership"
    src = _source(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.chown(dest, 0, 4321)
    os.chmod(dest, 0o2755)  # folders made in it inherit group 4321 and the setgid bit
    out = _restore(tmp_path, repo, src, dest)
    compare_trees(src, out)
    for rel, st in walk(out).items():
        if stat.S_ISREG(st.st_mode):
            assert (st.st_uid, st.st_gid) == (0, os.getegid()), rel


def test_folders_reopened_by_name_take_the_long_way(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    # Every folder descriptor is closed between operations: what is at a folder's name
    # when it is reopened may not be what the restore made, so nothing is assumed.
    monkeypatch.setattr(directory_module, "_MAX_DIRS", 0)
    src = _source(tmp_path)
    chmods = _calls(monkeypatch, "fchmod")
    out = _restore(tmp_path, repo, src, tmp_path / "dest")
    compare_trees(src, out)
    assert len([p for p in chmods if ".comet-" in p]) == 2 * (len(PLAIN) + len(OTHER))
