"""Big-vault benchmark: the agent's memory to open a vault of N blobs and back up a small
change, and to verify and prune it.

    .venv/bin/python -m bench.bigvault --blobs 1000000,10000000
    .venv/bin/python -m bench.bigvault --blobs 3000000 --steps open,backup --keep DIR

For each N it builds a vault (once; ``--keep DIR`` reuses it) whose index lists N
synthetic data blobs, written as real index files through the engine's own writer
(``Repository.save_index``, 256 packs a file as prune writes them), with each pack a
sparse placeholder file of exactly the size its entries imply (never read). One
synthetic snapshot's real tree blobs name every synthetic blob (so verify and prune mark
all N as used), and a real backup of a small source tree gives the small-change backup
its parent. Then each step runs in a fresh Python process, the way an agent job would:

- ``open``: ``Repository.open`` (loads every index file);
- ``backup``: open, then ``run_backup`` of the small tree with one file changed;
- ``verify``: ``check`` (structure: every index file, pack size and tree; no data read);
- ``prune``: ``prune`` (marks every snapshot's blobs; keeps every pack, rewrites the
  index). Destructive only to the synthetic vault, so it runs last.

Each step prints its wall time and peak RSS (``VmHWM``) and ``RSS after imports``, the
baseline; *per blob* is (peak - the same step's peak on an empty vault) / N, so the fixed
cost of a backup is not counted against the index. Imports nothing from ``bench``'s
comparison harness; needs the agent installed (``deploy/bootstrap --dev``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VAULT_KEY = bytes(range(32))
PACKS_PER_INDEX_FILE = 256
FANOUT = 100  # entries of a synthetic directory
BLOBS_PER_FILE = 4  # blobs of a synthetic file
STEPS = ("open", "backup", "verify", "prune")


def _status(field: str) -> int:
    """A ``kB`` field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _small_tree(root: Path, generation: int) -> None:
    """The small source tree: 50 files, one of them changed in each generation."""
    for i in range(50):
        path = root / f"d{i % 5}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"file {i}\n" * 200
        if i == 7:
            text += f"generation {generation}\n"
        path.write_text(text)


def build(vault: Path, source: Path, blobs: int, blobs_per_pack: int) -> dict[str, Any]:
    """Create the vault described in the module docstring."""
    from comet.agent.backup import BackupOptions, FilesSource, run_backup
    from comet.agent.maintenance.packs import expected_pack_size
    from comet.agent.repository import Repository
    from comet.agent.repository.format import BlobType
    from comet.agent.repository.pack import PACK_HEADER, PackEntry, pack_key
    from comet.agent.repository.snapshot import Snapshot
    from comet.agent.repository.tree import Node, NodeType, Tree
    from comet.agent.storage.local import LocalStorage

    started = time.monotonic()
    shutil.rmtree(vault, ignore_errors=True)
    shutil.rmtree(source, ignore_errors=True)
    repo = Repository.init(LocalStorage(vault), VAULT_KEY)
    _small_tree(source, 0)
    run_backup(repo, FilesSource([str(source)]), BackupOptions("small", "bench"))

    length, raw_length = 400_000, 1 << 20
    # The synthetic snapshot: files of BLOBS_PER_FILE blobs, FANOUT files a directory,
    # FANOUT directories a parent directory, and so on up to one root.
    parents: list[list[Node]] = [[]]  # pending nodes per level above files
    batch: list[tuple[bytes, list[PackEntry]]] = []
    writer = repo.blob_writer()

    def store_dir(depth: int) -> None:
        """Close the pending directory at ``depth`` into a node one level up."""
        nodes = parents[depth]
        data = Tree(tuple(nodes)).encode()
        tree_id = repo.sealer.blob_id(BlobType.TREE, data)
        writer.add(BlobType.TREE, tree_id, data)
        if depth + 1 == len(parents):
            parents.append([])
        up = parents[depth + 1]
        up.append(Node(f"d{len(up):03d}", NodeType.DIR, mode=0o755, subtree=tree_id))
        parents[depth] = []
        if len(up) == FANOUT:
            store_dir(depth + 1)

    def add_file(content: tuple[bytes, ...]) -> None:
        files = parents[0]
        size = raw_length * len(content)
        files.append(
            Node(f"f{len(files):03d}", NodeType.FILE, mode=0o644, size=size, content=content)
        )
        if len(files) == FANOUT:
            store_dir(0)

    done = 0
    while done < blobs:
        count = min(blobs_per_pack, blobs - done)
        ids = os.urandom(32 * count)
        entries = [
            PackEntry(
                ids[i * 32 : i * 32 + 32],
                BlobType.DATA,
                len(PACK_HEADER) + i * length,
                length,
                raw_length,
            )
            for i in range(count)
        ]
        pack_id = os.urandom(32)
        path = vault.joinpath(*pack_key(pack_id).split("/"))
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(expected_pack_size(entries))  # sparse: never read
        batch.append((pack_id, entries))
        if len(batch) == PACKS_PER_INDEX_FILE:
            repo.save_index(batch)
            batch = []
        for i in range(0, count, BLOBS_PER_FILE):
            add_file(tuple(e.blob_id for e in entries[i : i + BLOBS_PER_FILE]))
        done += count
    if batch:
        repo.save_index(batch)
    # Close the pending directories bottom-up; the single node left on top is the root.
    depth = 0
    while depth < len(parents):
        if depth and depth == len(parents) - 1 and len(parents[depth]) == 1:
            break
        if parents[depth] or len(parents) == 1:
            store_dir(depth)
        depth += 1
    (top,) = parents[-1]
    assert top.subtree is not None
    root = top.subtree
    writer.flush()
    writer.close()
    now = repo.now_ns()
    repo.save_snapshot(Snapshot("synthetic", "bench", "bench", root, now, now, ("/synthetic",)))
    return {"blobs": blobs, "build_seconds": round(time.monotonic() - started, 1)}


def step(name: str, vault: Path, source: Path) -> dict[str, Any]:
    """Run one step in this process; return its figures."""
    from comet.agent.backup import BackupOptions, FilesSource, run_backup
    from comet.agent.maintenance.check import check
    from comet.agent.maintenance.prune import prune
    from comet.agent.repository import Repository
    from comet.agent.storage.local import LocalStorage

    baseline = _status("VmRSS")
    started = time.monotonic()
    repo = Repository.open(LocalStorage(vault), VAULT_KEY)
    out: dict[str, Any] = {"indexed_blobs": len(repo.index)}
    if name == "backup":
        _small_tree(source, int(time.time()))
        result = run_backup(repo, FilesSource([str(source)]), BackupOptions("small", "bench"))
        out["new_blobs"] = result.new_blobs
    elif name == "verify":
        result_check = check(repo)
        out["ok"] = result_check.ok
        out["problems"] = [str(p) for p in result_check.problems[:3]]
    elif name == "prune":
        result_prune = prune(repo)
        out["blobs_used"] = result_prune.blobs_used
        out["packs_kept"] = result_prune.packs_kept
    out["seconds"] = round(time.monotonic() - started, 2)
    out["baseline_rss"] = baseline
    out["peak_rss"] = _status("VmHWM")
    return out


def _child(name: str, vault: Path, source: Path, agent_path: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if agent_path is not None:  # another version of the agent, e.g. an older checkout
        env["PYTHONPATH"] = os.pathsep.join([str(agent_path), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bigvault", "--step", name, str(vault), str(source)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode:
        raise RuntimeError(f"step {name} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bigvault", description=__doc__.split("\n")[0])
    p.add_argument("--blobs", default="1000000", help="comma-separated blob counts (1000000)")
    p.add_argument("--blobs-per-pack", type=int, default=32)
    p.add_argument("--steps", default=",".join(STEPS), help="of " + ",".join(STEPS))
    p.add_argument("--keep", type=Path, help="keep (and reuse) the vaults under this dir")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--agent-path",
        type=Path,
        help="run the steps with the agent package under this dir (e.g. the 'agent' dir "
        "of an older checkout: before/after figures on the same vaults)",
    )
    p.add_argument("--step", nargs=3, metavar=("NAME", "VAULT", "SOURCE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        name, vault, source = args.step
        print(json.dumps(step(name, Path(vault), Path(source))))
        return 0
    steps = [s for s in args.steps.split(",") if s]
    unknown = set(steps) - set(STEPS)
    if unknown:
        p.error(f"unknown steps {sorted(unknown)}")
    counts = [0] + [int(n) for n in args.blobs.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="comet-bigvault-"))
    results: list[dict[str, Any]] = []
    try:
        for n in counts:
            vault, source = work / f"vault-{n}", work / f"source-{n}"
            marker = work / f"vault-{n}.built"
            if not marker.exists():
                info = build(vault, source, n, args.blobs_per_pack)
                marker.write_text(json.dumps(info))
                print(f"built {n:,} blobs in {info['build_seconds']} s", file=sys.stderr)
            for name in steps:
                figures = _child(name, vault, source, args.agent_path)
                figures.update(blobs=n, step=name)
                results.append(figures)
                print(json.dumps(figures), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    empty = {r["step"]: r["peak_rss"] for r in results if r["blobs"] == 0}
    print(f"{'blobs':>12} {'step':<7} {'seconds':>8} {'base MiB':>9} {'peak MiB':>9} {'B/blob':>7}")
    for r in results:
        per_blob = (r["peak_rss"] - empty[r["step"]]) / r["blobs"] if r["blobs"] else 0.0
        r["bytes_per_blob"] = round(per_blob, 1)
        print(
            f"{r['blobs']:>12,} {r['step']:<7} {r['seconds']:>8} {_mib(r['baseline_rss']):>9} "
            f"{_mib(r['peak_rss']):>9} {per_blob:>7.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
