"""detect(): which foreign setups are found, and how broken files are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from comet.agent.importers import ImporterError, Product, detect, plan_import
from tests.agent.importers.samples import ENVIRONMENT, sample_tree, write


def test_finds_exactly_the_sample_setups(tmp_path: Path) -> None:
    tree = sample_tree(tmp_path)

    result = detect(home=tree.home, etc=tree.etc, env=ENVIRONMENT)

    found = [(s.product, s.path, s.section) for s in result.sources]
    assert found == [
        (Product.BORGMATIC, tree.modern_borgmatic, ""),
        (Product.BORGMATIC, tree.legacy_borgmatic, ""),
        (Product.RESTICPROFILE, tree.resticprofile, "default"),
        (Product.RESTICPROFILE, tree.resticprofile, "offsite"),
        (Product.AUTORESTIC, tree.autorestic, "home"),
        (Product.RESTIC_ENV, tree.restic_env, ""),
        (Product.RESTIC_ENV, None, ""),
    ]
    # The only warning is autorestic's Docker volume location, which Comet cannot read.
    assert len(result.warnings) == 1
    assert "'media'" in result.warnings[0] and "Docker volume" in result.warnings[0]


def test_descriptions_say_what_and_how_many(tmp_path: Path) -> None:
    tree = sample_tree(tmp_path)

    by_key = {
        (s.path, s.section): s.description
        for s in detect(home=tree.home, etc=tree.etc, env=ENVIRONMENT).sources
    }

    assert by_key[(tree.modern_borgmatic, "")] == (
        "borgmatic config.yaml: 3 folders, 1 database dump to 2 repositories "
        f"({tree.modern_borgmatic})"
    )
    assert by_key[(tree.legacy_borgmatic, "")].startswith(
        "borgmatic config.yaml: 2 folders, 2 database dumps to 2 repositories ("
    )
    assert by_key[(tree.resticprofile, "offsite")].startswith(
        "resticprofile profile 'offsite': 1 folder to 1 repository ("
    )
    assert by_key[(None, "")] == (
        "restic-env environment: 1 folder to 1 repository (environment variables)"
    )
    assert all("\n" not in d for d in by_key.values())


def test_source_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    tree = sample_tree(tmp_path)

    first = [s.source_id for s in detect(home=tree.home, etc=tree.etc, env=ENVIRONMENT).sources]
    again = [s.source_id for s in detect(home=tree.home, etc=tree.etc, env=ENVIRONMENT).sources]

    assert first == again
    assert len(set(first)) == len(first)
    assert all(len(i) == 12 for i in first)


def test_environment_source_keeps_no_secrets(tmp_path: Path) -> None:
    env_source = next(
        s for s in detect(home=tmp_path, etc=tmp_path / "etc", env=ENVIRONMENT).sources
    )

    assert env_source.path is None
    assert dict(env_source.environment) == {
        "RESTIC_REPOSITORY": "/var/backups/restic",
        "RESTIC_BACKUP_PATHS": "/srv/data",
    }
    plan = plan_import(env_source)
    assert plan.items[0].includes == ("/srv/data",)
    assert plan.vaults[0].settings.path == "/var/backups/restic-comet"  # type: ignore[union-attr]


def test_nothing_found_is_an_empty_result(tmp_path: Path) -> None:
    result = detect(home=tmp_path / "home", etc=tmp_path / "etc", env={"HOME": "/x"})

    assert result.sources == []
    assert result.warnings == []


@pytest.mark.parametrize(
    ("relative", "text", "reason"),
    [
        ("etc/borgmatic.d/broken.yaml", "source_directories: [/home\nrepositories: x\n", "YAML"),
        ("etc/borgmatic.d/empty.yaml", "# nothing here\n", "empty"),
        ("etc/borgmatic.d/list.yaml", "- /home\n- /etc\n", "mapping"),
        ("etc/borgmatic.d/include.yaml", "<<: !include /etc/borgmatic/common.yaml\n", "YAML"),
        ("etc/borgmatic.d/shape.yaml", "keep_daily: 3\nchecks: []\n", "no source"),
        ("etc/resticprofile/profiles.toml", "[default\nrepository = 1\n", "TOML"),
        ("etc/resticprofile/profiles.yaml", "default:\n  repository: /r\n", "no profile"),
        ("etc/restic/nothing.env", "RESTIC_PASSWORD=x\n", "RESTIC_REPOSITORY"),
        ("etc/restic/garbage.env", "this is not an assignment\n", "KEY=value"),
        ("etc/default/restic", b"RESTIC_REPOSITORY=\xff\xfe\n", "UTF-8"),
        ("home/.autorestic.yml", "locations: {}\n", "no location"),
    ],
)
def test_broken_files_become_warnings(
    tmp_path: Path, relative: str, text: str | bytes, reason: str
) -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)

    result = detect(home=tmp_path / "home", etc=tmp_path / "etc", env={})

    assert result.sources == []
    assert len(result.warnings) == 1
    assert str(path) in result.warnings[0]
    assert reason in result.warnings[0]


def test_a_directory_where_a_file_belongs_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "home" / ".autorestic.yml").mkdir(parents=True)

    result = detect(home=tmp_path / "home", etc=tmp_path / "etc", env={})

    assert result.sources == []
    assert result.warnings == [
        f"skipped: {tmp_path / 'home' / '.autorestic.yml'}: not a regular file"
    ]


def test_broken_files_do_not_hide_good_ones(tmp_path: Path) -> None:
    tree = sample_tree(tmp_path)
    write(tree.etc / "borgmatic.d" / "broken.yaml", "source_directories: [\n")

    result = detect(home=tree.home, etc=tree.etc, env={})

    assert len(result.sources) == 6
    assert any("broken.yaml" in w for w in result.warnings)


def test_plan_of_a_vanished_source_fails_clearly(tmp_path: Path) -> None:
    tree = sample_tree(tmp_path)
    source = detect(home=tree.home, etc=tree.etc, env={}).sources[0]
    tree.modern_borgmatic.unlink()

    with pytest.raises(ImporterError, match="cannot read"):
        plan_import(source)
