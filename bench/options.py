"""``BenchOptions``: what one ``bench/run`` invocation measures, parsed from its
command line. Imports nothing from Comet."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("comet", "restic", "borg")
CORPORA = ("source", "large")
MANY_FILES = "many-files"
OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    scale: float
    runs: int
    corpora: tuple[str, ...]
    tools: tuple[str, ...]
    json_path: Path
    workdir: Path | None
    restore_dir: Path
    profile_dir: Path | None
    mount: bool = True  # take the mount rows (comet mount vs restic mount)
    mount_only: bool = False  # only the first backup and the mount rows
    mount_samples: int = 3  # fresh mounts per tool and run, interleaved across tools
    # File counts of the many-files corpora (one corpus per count), growth rows only.
    file_counts: tuple[int, ...] = ()


def _tools(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in TOOLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown tool {', '.join(unknown) or '(none)'}; choose from {', '.join(TOOLS)}"
        )
    return tuple(dict.fromkeys(names))


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(n.replace("_", "")) for n in value.split(",") if n.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of file counts") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("file counts must be at least 1")
    return tuple(sorted(set(counts)))


def parse_options(argv: list[str] | None = None) -> BenchOptions:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark Comet against restic and borg on the same generated data.",
    )
    parser.add_argument(
        "--scale",
        type=_positive_float,
        default=1.0,
        help="size factor: 1 is ~0.5 GB of source tree and ~1.5 GB of large files",
    )
    parser.add_argument("--runs", type=_positive_int, default=3, help="runs per tool (median)")
    parser.add_argument(
        "--corpus",
        choices=("source", "large", "both", MANY_FILES),
        default="both",
        help=f"{MANY_FILES}: generated small files (0-4 KiB, deep and wide directories), "
        "one corpus per --files count: first backup, unchanged re-run, restore and find, "
        "with a growth table (peak RSS at the largest count vs the smallest)",
    )
    parser.add_argument(
        "--files",
        type=_counts,
        default=(100_000, 1_000_000),
        metavar="N[,N...]",
        help=f"file counts of the {MANY_FILES} corpora (default 100000,1000000)",
    )
    parser.add_argument(
        "--tools", type=_tools, default=TOOLS, help="comma-separated: comet,restic,borg"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="results file (default bench/out/…)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep corpora and repositories here (default: a temp dir, removed at the end)",
    )
    parser.add_argument(
        "--restore-dir",
        type=Path,
        default=Path("/dev/shm"),
        help="restores go under this directory; keep it a tmpfs (default /dev/shm)",
    )
    parser.add_argument(
        "--profile-comet",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the Comet agent with py-spy during each timed job (collapsed stacks "
        "in DIR; slows Comet down, so do not compare those timings)",
    )
    parser.add_argument(
        "--mount",
        choices=("yes", "no", "only"),
        default="yes",
        help="mount rows (comet mount vs restic mount): yes, no, or only (first backup "
        "and the mount rows, nothing else)",
    )
    parser.add_argument(
        "--mount-samples",
        type=_positive_int,
        default=3,
        metavar="N",
        help="fresh mounts per tool, corpus and run for the mount rows, the tools taking "
        "turns (median; default 3)",
    )
    args = parser.parse_args(argv)
    if args.corpus == MANY_FILES:
        corpora: tuple[str, ...] = tuple(f"{MANY_FILES}-{n}" for n in args.files)
    else:
        corpora = CORPORA if args.corpus == "both" else (args.corpus,)
    json_path = args.json or OUT_DIR / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    return BenchOptions(
        scale=args.scale,
        runs=args.runs,
        corpora=corpora,
        tools=args.tools,
        json_path=json_path,
        workdir=args.workdir,
        restore_dir=args.restore_dir,
        profile_dir=args.profile_comet,
        mount=args.mount != "no",
        mount_only=args.mount == "only",
        mount_samples=args.mount_samples,
        file_counts=args.files if args.corpus == MANY_FILES else (),
    )
