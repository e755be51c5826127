"""``plan_import``: one detected source → the Comet settings proposed for it."""

from __future__ import annotations

from pathlib import Path

from comet.agent.importers.autorestic import read_autorestic
from comet.agent.importers.borgmatic import read_borgmatic
from comet.agent.importers.config_file import load_env_file
from comet.agent.importers.foreign import ForeignSetup, ScheduleSyntax
from comet.agent.importers.plan import (
    DEFAULT_TIMING,
    ImportPlan,
    SchedulePlan,
    ScheduleTiming,
    VaultPlan,
)
from comet.agent.importers.repositories import vault_for
from comet.agent.importers.restic_env import read_restic_env
from comet.agent.importers.resticprofile import read_resticprofile
from comet.agent.importers.retention import retention_policy
from comet.agent.importers.source import ImporterError, ImportSource, Product
from comet.agent.importers.timing import from_cron, from_on_calendar
from comet.agent.vaults import VaultType

SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError)
"""What a reader may raise on a setting of an unexpected shape; callers turn these into
ImporterError so a strange file never crashes the agent."""


def plan_import(source: ImportSource) -> ImportPlan:
    """Read ``source`` again and propose new Comet settings for it.

    Every item gets one schedule per proposed vault. Raises ImporterError if the source
    can no longer be read (changed or removed since detection)."""
    try:
        setup = read_setup(source)
    except SHAPE_ERRORS as e:
        raise ImporterError(f"{source.location}: a setting has an unexpected form ({e})") from e
    return build_plan(setup, home=source.home)


def read_setup(source: ImportSource) -> ForeignSetup:
    """The foreign setup behind ``source``. Raises ImporterError."""
    path = source.path
    if source.product is Product.RESTIC_ENV:
        if path is None:
            env = dict(source.environment)
            return read_restic_env(
                env, name="environment", where="environment", home=source.home, base_dir=None
            )
        return read_restic_env(
            load_env_file(path),
            name=path.name,
            where=str(path),
            home=source.home,
            base_dir=path.parent,
        )
    if path is None:
        raise ImporterError(f"a {source.product.value} source needs a file")
    if source.product is Product.BORGMATIC:
        return read_borgmatic(path, home=source.home)
    if source.product is Product.RESTICPROFILE:
        setups = read_resticprofile(path, home=source.home)
    else:
        setups = read_autorestic(path, home=source.home)[0]
    if source.section not in setups:
        raise ImporterError(f"{path}: {source.section!r} is no longer there")
    return setups[source.section]


def build_plan(setup: ForeignSetup, *, home: Path) -> ImportPlan:
    warnings = list(setup.warnings)
    vaults: list[VaultPlan] = []
    for repo in setup.repositories:
        vault, why = vault_for(repo, home=home)
        if vault is None:
            warnings.append(why)
        elif all(v.settings != vault.settings for v in vaults):
            vaults.append(vault)
    for vault in vaults:
        if vault.missing_secrets:
            joiner = " and " if vault.type is VaultType.S3 else " or "
            warnings.append(
                f"Storage Vault {vault.name!r}: credentials are never imported; "
                f"enter {joiner.join(vault.missing_secrets)} before creating it"
            )
    if not vaults:
        warnings.append("no Storage Vault could be proposed; schedules need one to be added")
    if not setup.items:
        warnings.append("nothing to back up was found; no Protected Item is proposed")
    retention, retention_warnings = retention_policy(setup.keep)
    warnings += retention_warnings
    timing_notes: list[str] = []
    timing = _timing(setup, timing_notes)
    schedules = [
        SchedulePlan(item_index=i, vault_index=v, timing=timing)
        for i in range(len(setup.items))
        for v in range(len(vaults))
    ]
    # Say a daily 02:00 backup was proposed only when a schedule is really made.
    warnings += [
        f"{note}; {DEFAULT_NOTE}" if schedules and timing is DEFAULT_TIMING else note
        for note in timing_notes
    ]
    return ImportPlan(
        items=list(setup.items),
        vaults=vaults,
        schedules=schedules,
        retention=retention,
        warnings=warnings,
    )


DEFAULT_NOTE = "proposed a daily backup at 02:00"


def _timing(setup: ForeignSetup, warnings: list[str]) -> ScheduleTiming:
    if not setup.schedules:
        warnings.append(setup.schedule_note)
        return DEFAULT_TIMING
    first = setup.schedules[0]
    if len(setup.schedules) > 1:
        warnings.append(f"only the first of {len(setup.schedules)} schedules was imported")
    convert = from_cron if first.syntax is ScheduleSyntax.CRON else from_on_calendar
    timing, why = convert(first.expression)
    if timing is None:
        warnings.append(why)
        return DEFAULT_TIMING
    return timing
