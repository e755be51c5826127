"""Program-input restores: a command per file, or one command reading a tar stream."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.errors import RestoreProgramError
from comet.agent.repository import Repository
from comet.agent.restore import ProgramArchiveTarget, ProgramPerFileTarget, run_restore
from tests.agent.restore.compare import compare_trees

OPTIONS = BackupOptions("item", "device")


@pytest.fixture
def snapshot(repo: Repository, rich_tree: Path) -> bytes:
    return run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS).snapshot_id


def test_command_per_file_gets_content_and_environment(
    tmp_path: Path, repo: Repository, rich_tree: Path, snapshot: bytes
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    command = (
        'cat > "$OUT/$COMET_RESTORE_NAME"; '
        'printf "%s\\t%s\\n" "$COMET_RESTORE_PATH" "$COMET_RESTORE_SIZE" >> "$OUT.log"'
    )
    target = ProgramPerFileTarget(command, env={**os.environ, "OUT": str(out)})
    result = run_restore(repo, snapshot, target, paths=[str(rich_tree / "a"), str(rich_tree)])
    # symlinks and the fifo are not program input; they are warned about
    assert {w.path.rsplit("/", 1)[-1] for w in result.warnings} == {
        "link-rel",
        "link-dangling",
        "fifo",
    }
    regular = {p.name: p for p in rich_tree.rglob("*") if p.is_file() and not p.is_symlink()}
    regular = {k: v for k, v in regular.items() if k != "fifo"}
    assert sorted(os.listdir(out)) == sorted(regular)
    for name, source in regular.items():
        assert (out / name).read_bytes() == source.read_bytes(), name
    lines = os.fsdecode((tmp_path / "out.log").read_bytes()).splitlines()
    log = dict(line.split("\t") for line in lines)
    assert log[str(rich_tree / os.fsdecode(b"latin1-\xe9"))] == str(len(b"not utf-8 name"))
    assert log[str(rich_tree / "random.bin")] == str(20 << 20)
    assert log[str(rich_tree / "a" / "hard2")] == str(13 * 1000)  # hard links run too


def test_failing_command_fails_the_restore(
    repo: Repository, rich_tree: Path, snapshot: bytes
) -> None:
    command = 'cat > /dev/null; echo "disk full for $COMET_RESTORE_NAME" >&2; exit 3'
    with pytest.raises(RestoreProgramError, match=r"exited with code 3: disk full for deep\.txt"):
        run_restore(repo, snapshot, ProgramPerFileTarget(command), paths=[str(rich_tree / "a")])


def test_command_that_quits_early_with_an_error(
    repo: Repository, rich_tree: Path, snapshot: bytes
) -> None:
    target = ProgramPerFileTarget("echo refused >&2; exit 7")
    with pytest.raises(RestoreProgramError, match=r"random\.bin exited with code 7: refused"):
        run_restore(repo, snapshot, target, paths=[str(rich_tree / "random.bin")])


def test_command_may_ignore_its_input(repo: Repository, rich_tree: Path, snapshot: bytes) -> None:
    result = run_restore(
        repo, snapshot, ProgramPerFileTarget("true"), paths=[str(rich_tree / "random.bin")]
    )
    assert result.files == 1 and not result.warnings


def test_archive_command_extracts_with_tar(
    tmp_path: Path, repo: Repository, rich_tree: Path, snapshot: bytes
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run_restore(repo, snapshot, ProgramArchiveTarget(f"tar -x -C '{out}'"))
    assert not result.warnings
    compare_trees(rich_tree, out / str(rich_tree).lstrip("/"))


def test_archive_command_partial_selection_and_zstd(
    tmp_path: Path, repo: Repository, rich_tree: Path, snapshot: bytes
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = ProgramArchiveTarget(f"zstd -dc | tar -x -C '{out}'", compression="zstd")
    run_restore(repo, snapshot, target, paths=[str(rich_tree / "a" / "b")])
    inside = out / str(rich_tree).lstrip("/")
    assert (inside / "a" / "b" / "c" / "deep.txt").read_text() == "deep"
    assert sorted(p.name for p in inside.iterdir()) == ["a"]


def test_failing_archive_command(repo: Repository, snapshot: bytes) -> None:
    with pytest.raises(RestoreProgramError, match=r"exited with code 2: .*nowhere"):
        run_restore(repo, snapshot, ProgramArchiveTarget("tar -x -C /nowhere/at/all"))
