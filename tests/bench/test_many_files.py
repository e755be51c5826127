"""The many-files corpus and its growth table (the end-to-end run is ``bench/run
--corpus many-files``; too slow for the test suite)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.borg_client import BorgClient
from bench.comet_client import CometClient
from bench.corpus import MANY_FILES_MAX_SIZE, MANY_FILES_PER_DIR, build_many_files, summarize
from bench.measure import BenchError, run_measured
from bench.options import parse_options
from bench.report import Results
from bench.restic_client import ResticClient
from bench.tool import FindingTool, ListingTool


def test_many_files_corpus_is_deep_wide_small_and_repeatable(tmp_path: Path) -> None:
    count = 40 * MANY_FILES_PER_DIR + 7  # 41 leaves: two levels of directories
    corpus = build_many_files(tmp_path / "a", count, "many-files-x")
    assert len(corpus.files) == count
    assert summarize(corpus.root).files == count
    assert {rel.count("/") for rel in corpus.files} == {2}
    sizes = [os.path.getsize(corpus.root / rel) for rel in corpus.files]
    assert max(sizes) <= MANY_FILES_MAX_SIZE and 0 <= min(sizes) < 100
    again = build_many_files(tmp_path / "b", count, "many-files-x")
    assert again.files == corpus.files
    assert all(
        (corpus.root / rel).read_bytes() == (again.root / rel).read_bytes()
        for rel in corpus.files[:: MANY_FILES_PER_DIR // 2]
    )


def test_options_name_one_corpus_per_count_and_the_growth_table_compares_them() -> None:
    options = parse_options(["--corpus", "many-files", "--files", "300000,100_000"])
    assert options.file_counts == (100_000, 300_000)
    assert options.corpora == ("many-files-100000", "many-files-300000")
    assert parse_options([]).file_counts == ()
    results = Results(options.corpora, ("comet", "restic"))
    for corpus, comet, restic in (
        (options.corpora[0], 50e6, 40e6),
        (options.corpora[1], 80e6, 100e6),
    ):
        results.add_rss(corpus, "rss_first_backup", "comet", int(comet))
        results.add_rss(corpus, "rss_first_backup", "restic", int(restic))
    table = results.growth_table(options.corpora, options.file_counts)
    lines = table.splitlines()
    assert "100,000 files MB" in lines[0] and "300,000 files MB" in lines[0]
    assert lines[2].split() == ["first", "backup", "comet", "50.0", "80.0", "1.60x"]
    assert lines[3].split() == ["first", "backup", "restic", "40.0", "100.0", "2.50x"]


def test_listing_rows_and_failures() -> None:
    """ls -R rows (the agent's and the Comet CLI's peaks) reach the growth table; every
    client that takes them is a ListingTool; a listing that failed is kept as text."""
    corpora = ("many-files-10", "many-files-30")
    results = Results(corpora, ("comet", "restic"))
    for corpus, mb in zip(corpora, (50e6, 60e6), strict=True):
        results.add(corpus, "ls", "comet", 2.0)
        results.add_rss(corpus, "rss_ls", "comet", int(mb))
        results.add_rss(corpus, "rss_ls_cli", "comet", int(mb / 2))
    results.failures.append("many-files-30 restic ls -R: exited 1")
    lines = results.growth_table(corpora, (10, 30)).splitlines()
    assert ["ls", "-R", "comet", "50.0", "60.0", "1.20x"] in [line.split() for line in lines]
    assert any(line.startswith("ls -R, comet CLI") for line in lines)
    assert "ls -R of the snapshot" in results.table()
    assert all(isinstance(c, ListingTool) for c in (ResticClient, BorgClient, CometClient))
    assert all(isinstance(c, FindingTool) for c in (ResticClient, BorgClient, CometClient))


def test_peak_rss_is_the_commands_own_not_the_benchs(tmp_path: Path) -> None:
    """Linux keeps a process's peak RSS across execve: a command forked straight from
    a bench holding a big corpus listing reported the bench's size as its own."""
    held = bytearray(96 << 20)
    held[::4096] = b"\1" * len(range(0, len(held), 4096))  # resident, not just reserved
    small = run_measured(["true"], env=dict(os.environ), log=tmp_path / "log")
    assert small.peak_rss_bytes < 32 << 20
    grows = ["python3", "-c", "x = bytearray(48 << 20); x[::4096] = b'1' * len(x[::4096])"]
    big = run_measured(grows, env=dict(os.environ), log=tmp_path / "log")
    assert 48 << 20 < big.peak_rss_bytes < 90 << 20
    del held
    with pytest.raises(BenchError, match="exited 3"):
        run_measured(["sh", "-c", "exit 3"], env=dict(os.environ), log=tmp_path / "log")
