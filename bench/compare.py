"""The comparison run: build the corpora, then for every run, corpus and tool take a
fresh repository through first backup, unchanged re-run, 1 % changed re-run and a full
restore; print the medians and write them as JSON. Entry point of ``bench/run``
(``python -m bench.compare``). Imports nothing from Comet: it drives the installed
console scripts."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.borg_client import BorgClient
from bench.change import FileChange, file_digest
from bench.comet_client import CometClient
from bench.corpus import (
    Corpus,
    build_large,
    build_many_files,
    build_source,
    directory_bytes,
    summarize,
    warm_up,
)
from bench.measure import BenchError, Measurement
from bench.mount_rows import MountingTool, measure_mounts
from bench.options import MANY_FILES, BenchOptions, parse_options
from bench.report import Results
from bench.restic_client import ResticClient
from bench.tool import Case, FindingTool, ListingTool, ToolClient

NOTES = (
    "Times are wall-clock seconds of the tool's command (comet: the `comet` CLI with --wait).",
    "Medians of all runs; each run starts every tool from an empty repository.",
    "Page cache cannot be dropped here: every tool's first backup follows one untimed "
    "read of the whole corpus, so all tools see a warm cache.",
    "Restores go into a tmpfs; the restored tree is checked (file count, bytes, changed "
    "files' contents) before it is removed.",
    "Peak RSS: restic and borg from wait4 ru_maxrss; Comet is the agent's VmHWM, the agent "
    "restarted before each timed operation (includes its ~start-up footprint).",
    "Repository size: apparent bytes of all files in the vault/repository directory.",
    "Mount rows: after every tool's first backup, --mount-samples fresh mounts per tool, "
    "the tools taking turns (order reversed every sample), each after an untimed read of "
    "its repository; time to first byte opens and reads "
    "1 byte of a file not read before (median of 5 files spread through the corpus); "
    "comet mount is served by the agent (256 MiB blob cache), restic mount by restic 0.14; "
    "borg has no mount rows.",
    "restic 0.14 creates repository format v2 and compresses (--compression auto, zstd "
    "default speed); it is not an uncompressed v1 repository.",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_corpora(options: BenchOptions, workdir: Path) -> list[Corpus]:
    corpora = []
    for name in options.corpora:
        root = workdir / "corpus" / name
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        started = time.perf_counter()
        if name.startswith(MANY_FILES):
            corpus = build_many_files(root, int(name.rsplit("-", 1)[1]), name)
        elif name == "source":
            corpus = build_source(root, options.scale)
        else:
            corpus = build_large(root, options.scale)
        summary = summarize(root)
        log(
            f"built corpus {name}: {summary.files} files, {summary.bytes / 1e6:.1f} MB "
            f"in {time.perf_counter() - started:.1f} s"
        )
        corpora.append(corpus)
    return corpora


def make_clients(options: BenchOptions, workdir: Path, stack: ExitStack) -> list[ToolClient]:
    clients: list[ToolClient] = []
    for name in options.tools:
        if options.mount_only and name == "borg":
            continue  # borg has no mount rows
        if name == "comet":
            comet = CometClient(workdir, profile_dir=options.profile_dir)
            stack.callback(comet.close)
            comet.start()
            clients.append(comet)
        elif name == "restic":
            clients.append(ResticClient())
        else:
            clients.append(BorgClient())
    return clients


def start_case(client: ToolClient, case: Case) -> tuple[Measurement, int]:
    """Create the case's repository and take its first backup: (timing, repo size)."""
    client.init(case)
    warm_up(case.corpus)
    first = client.backup(case)
    return first, directory_bytes(case.repo_dir)


def measure_case(
    client: ToolClient,
    case: Case,
    results: Results,
    restore_root: Path,
    options: BenchOptions,
    started: tuple[Measurement, int],
) -> None:
    """The rest of a case after ``start_case``: re-runs, restore, sizes."""
    corpus, tool = case.corpus, client.name
    first, size_first = started
    if options.mount_only:
        results.add(corpus.name, "first_backup", tool, first.seconds)
        results.add(corpus.name, "size_first", tool, size_first)
        return
    unchanged = client.backup(case)
    change = FileChange(corpus)
    change.apply()
    try:
        changed = client.backup(case)
        expected, digests = summarize(corpus.root), change.digests()
        dest = restore_root / f"{tool}-{corpus.name}-run{case.run}"
        dest.mkdir()
        try:
            restored = client.restore(case, dest)
            _verify_restore(tool, dest / corpus.root.relative_to("/"), expected, digests)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
    finally:
        change.revert()
    steps = (
        ("first_backup", first),
        ("unchanged_backup", unchanged),
        ("changed_backup", changed),
        ("restore", restored),
    )
    for key, m in steps:
        results.add(corpus.name, key, tool, m.seconds)
        results.add_rss(corpus.name, f"rss_{key}", tool, m.peak_rss_bytes)
    if isinstance(client, CometClient) and case.run == 1:
        out = restore_root / f"reads-{corpus.name}"
        out.mkdir()
        try:
            for target, reads in client.restore_reads(case, out).items():
                results.add(corpus.name, f"reads_{target}", tool, reads)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    results.add(corpus.name, "size_first", tool, size_first)
    results.add(corpus.name, "size_final", tool, directory_bytes(case.repo_dir))
    times = ", ".join(f"{key} {m.seconds:.2f} s" for key, m in steps)
    log(f"run {case.run} {corpus.name:6} {tool:6}: {times}")


# Matches one file name in a thousand of a many-files corpus (f777.bin, f1777.bin, ...):
# every tree is walked, the output stays small.
FIND_PATTERN = "f*777.bin"


def measure_growth_case(
    client: ToolClient, case: Case, results: Results, restore_root: Path
) -> None:
    """A many-files corpus: first backup, unchanged re-run, full restore (checked by
    count and bytes), a recursive listing and a find over the snapshot."""
    corpus, tool = case.corpus, client.name
    client.init(case)
    warm_up(corpus)
    steps = [("first_backup", client.backup(case)), ("unchanged_backup", client.backup(case))]
    expected = summarize(corpus.root)
    dest = restore_root / f"{tool}-{corpus.name}-run{case.run}"
    dest.mkdir()
    try:
        steps.append(("restore", client.restore(case, dest)))
        _verify_restore(tool, dest / corpus.root.relative_to("/"), expected, {})
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if isinstance(client, ListingTool):
        try:
            steps.append(("ls", client.list_all(case)))
        except BenchError as e:  # a listing too big for the tool: a finding, not a crash
            log(f"run {case.run} {corpus.name} {tool:6}: ls -R failed: {e}")
            results.failures.append(f"{corpus.name} {tool} ls -R: {e}")
        else:
            if isinstance(client, CometClient):
                results.add_rss(corpus.name, "rss_ls_cli", tool, client.last_cli_rss)
    if isinstance(client, FindingTool):
        steps.append(("find", client.find(case, FIND_PATTERN)))
    for key, m in steps:
        results.add(corpus.name, key, tool, m.seconds)
        results.add_rss(corpus.name, f"rss_{key}", tool, m.peak_rss_bytes)
    results.add(corpus.name, "size_first", tool, directory_bytes(case.repo_dir))
    times = ", ".join(f"{key} {m.seconds:.2f} s" for key, m in steps)
    log(f"run {case.run} {corpus.name} {tool:6}: {times}")


def _verify_restore(tool: str, root: Path, expected: Any, digests: dict[str, str]) -> None:
    got = summarize(root)
    if got != expected:
        raise BenchError(f"{tool} restored {got}, expected {expected} (under {root})")
    for rel, digest in digests.items():
        if file_digest(root / rel) != digest:
            raise BenchError(f"{tool} restored {rel} with the wrong contents")


def run(options: BenchOptions) -> Results:
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_at_start = os.getloadavg()
    with ExitStack() as stack:
        if options.workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="comet-bench-", dir="/tmp"))
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        else:
            workdir = options.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        options.restore_dir.mkdir(parents=True, exist_ok=True)
        restore_root = Path(tempfile.mkdtemp(prefix="comet-bench-", dir=options.restore_dir))
        stack.callback(shutil.rmtree, restore_root, ignore_errors=True)
        log(f"workdir {workdir}, restores under {restore_root}")

        corpora = build_corpora(options, workdir)
        clients = make_clients(options, workdir, stack)
        results = Results(tuple(c.name for c in corpora), tuple(c.name for c in clients))
        for run_no in range(1, options.runs + 1):
            for corpus in corpora:
                cases = []
                for client in clients:
                    case_dir = workdir / f"run{run_no}" / corpus.name / client.name
                    home = case_dir / "home"
                    home.mkdir(parents=True)
                    # Repositories stay until the end: deleting many files makes the
                    # next file creations on this disk slow, which would skew the timings.
                    cases.append((client, Case(corpus, run_no, case_dir / "repository", home)))
                if options.file_counts:
                    for client, case in cases:
                        measure_growth_case(client, case, results, restore_root)
                    continue
                # Every tool's first backup, then the mount rows with the tools taking
                # turns on the same load, then the rest of each tool's series.
                started = [start_case(client, case) for client, case in cases]
                if options.mount:
                    mounting: list[tuple[MountingTool, Case]] = [
                        (c, case) for c, case in cases if isinstance(c, MountingTool)
                    ]
                    measure_mounts(mounting, results, options.mount_samples, log)
                for (client, case), first in zip(cases, started, strict=True):
                    measure_case(client, case, results, restore_root, options, first)

        meta = {
            "started_at": started_at,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "scale": options.scale,
            "runs": options.runs,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "tools": {c.name: {"version": c.version(), "settings": c.settings()} for c in clients},
            "corpora": {c.name: _describe(c) for c in corpora},
            "notes": list(NOTES),
            "failures": results.failures,
            "comet_jobs": next((c.jobs for c in clients if isinstance(c, CometClient)), []),
        }
        table = results.table()
        size = (
            f"{', '.join(f'{n:,}' for n in options.file_counts)} files"
            if options.file_counts
            else f"scale {options.scale}"
        )
        load = " / ".join(
            " ".join(f"{x:.2f}" for x in avg) for avg in (load_at_start, os.getloadavg())
        )
        print(f"\n{size}, median of {options.runs} run(s), load average {load} (start / end)\n")
        print(table)
        print()
        if len(options.file_counts) >= 2:
            counts = (options.file_counts[0], options.file_counts[-1])
            names = (corpora[0].name, corpora[-1].name)
            growth = results.growth_table(names, counts)
            print(f"peak RSS growth, {counts[0]:,} -> {counts[1]:,} files\n")
            print(growth)
            print()
            meta_growth = growth
        else:
            meta_growth = ""
        for failure in results.failures:
            print(f"failed: {failure}")
        for client in clients:
            print(f"{client.name} {client.version()}: {client.settings()}")
        results.write_json(options.json_path, {**meta, "table": table, "growth": meta_growth})
        print(f"\nresults: {options.json_path}")
        return results


def _describe(corpus: Corpus) -> dict[str, Any]:
    summary = summarize(corpus.root)
    described: dict[str, Any] = {
        "files": summary.files,
        "symlinks": summary.symlinks,
        "bytes": summary.bytes,
    }
    if not corpus.name.startswith(MANY_FILES):
        described["changed_files"] = FileChange(corpus).files
    return described


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    # Background shells start us with SIGINT ignored; SIGTERM would skip cleanup.
    # Both unwind through the ExitStack, which stops the Comet services it started.
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        run(options)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
