"""Proposing a new Comet Storage Vault for each foreign repository.

The foreign repository is never reused (its format is borg's or restic's, not Comet's);
the new vault goes next to it:

* local path ``/backup/borg`` → Local Path vault ``/backup/borg-comet``
* ``user@host:path``, ``ssh://user@host:port/path`` (borg), ``sftp:user@host:/path``,
  ``sftp://user@host:port//path`` (restic) → SFTP vault on the same host and account,
  path ``…-comet``; a key or password must be supplied (never imported)
* ``s3:[scheme://]host[:port]/bucket[/prefix]`` → S3 vault with the same endpoint and
  bucket, prefix ``comet/`` (``comet/<old prefix>/`` when the repository had one);
  access keys must be supplied (never imported)
* anything else (rest:, b2:, azure:, gs:, rclone:, relative paths) → no vault, a warning
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from comet.agent.importers.foreign import ForeignRepository, RepositoryDialect
from comet.agent.importers.plan import VaultPlan
from comet.agent.vaults import LocalSettings, S3Settings, SftpSettings, VaultType

NEW_SUFFIX = "-comet"
S3_PREFIX = "comet/"
_SCP_STYLE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+|\[[^\]]+\]):(?P<path>.*)$")
_URL = re.compile(
    r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?(?P<path>/.*)?$"
)
_AWS_REGION = re.compile(r"^s3[.-](?P<region>[a-z0-9-]+)\.amazonaws\.com$")


def vault_for(repo: ForeignRepository, *, home: Path) -> tuple[VaultPlan | None, str]:
    """The new vault for ``repo``, or None and the reason no vault is proposed."""
    loc = repo.location.strip()
    if repo.dialect is RepositoryDialect.RESTIC:
        plan = _restic(loc, repo, home)
    else:
        plan = _borg(loc, repo, home)
    if isinstance(plan, str):
        return None, f"repository {loc!r}: {plan}; create a Storage Vault for it yourself"
    return plan, ""


def _restic(loc: str, repo: ForeignRepository, home: Path) -> VaultPlan | str:
    if loc.startswith("local:"):
        return _local(loc[len("local:") :], repo, home)
    if loc.startswith("sftp://"):
        m = _URL.match(loc[len("sftp://") :])
        if not m or not m["path"]:
            return "not an sftp://user@host[:port]//path URL"
        # restic: one slash after the host is relative to the login directory.
        path = m["path"][1:]
        return _sftp(m["user"] or "", m["host"], int(m["port"] or 22), path, repo)
    if loc.startswith("sftp:"):
        m = _SCP_STYLE.match(loc[len("sftp:") :])
        if not m:
            return "not an sftp:user@host:path location"
        return _sftp(m["user"] or "", m["host"], 22, m["path"], repo)
    if loc.startswith("s3:"):
        return _s3(loc[len("s3:") :], repo)
    scheme = loc.split(":", 1)[0]
    if ":" in loc and not loc.startswith(("/", "~", ".")):
        return f"Comet has no Storage Vault type for restic {scheme!r} repositories"
    return _local(loc, repo, home)


def _borg(loc: str, repo: ForeignRepository, home: Path) -> VaultPlan | str:
    if loc.startswith("file://"):
        return _local(loc[len("file://") :], repo, home)
    if loc.startswith(("ssh://", "sftp://")):
        m = _URL.match(loc.split("://", 1)[1])
        if not m or not m["path"]:
            return "not an ssh://user@host[:port]/path URL"
        path = m["path"]
        # borg: /./path and /~/path are relative to the login directory.
        for relative in ("/./", "/~/"):
            if path.startswith(relative):
                path = path[len(relative) :]
        return _sftp(m["user"] or "", m["host"], int(m["port"] or 22), path, repo)
    if loc.startswith("s3:"):
        return _s3(loc[len("s3:") :], repo)
    if loc.startswith(("/", "~")):
        return _local(loc, repo, home)
    m = _SCP_STYLE.match(loc)
    if m and "://" not in loc:
        return _sftp(m["user"] or "", m["host"], 22, m["path"], repo)
    if "://" in loc or ":" in loc:
        return "Comet has no Storage Vault type for this kind of repository"
    return _local(loc, repo, home)


def _sibling(path: str) -> str:
    trimmed = path.rstrip("/")
    if not trimmed or trimmed in (".", "~"):
        return "comet" if not path.startswith("/") else "/comet"
    return trimmed + NEW_SUFFIX


def _name(repo: ForeignRepository, path: str) -> str:
    base = repo.label or posixpath.basename(path.rstrip("/")) or "repository"
    return f"{base}{NEW_SUFFIX}"


def _local(path: str, repo: ForeignRepository, home: Path) -> VaultPlan | str:
    if path == "~" or path.startswith("~/"):
        path = str(home).rstrip("/") + path[1:]
    if not path.startswith("/"):
        return "a relative path cannot be located reliably"
    new = _sibling(path)
    return VaultPlan(
        name=_name(repo, path),
        type=VaultType.LOCAL,
        settings=LocalSettings(path=new),
        foreign_repository=repo.location,
    )


def _sftp(user: str, host: str, port: int, path: str, repo: ForeignRepository) -> VaultPlan:
    if path.startswith("~/"):
        path = path[2:]
    return VaultPlan(
        name=_name(repo, path or host),
        type=VaultType.SFTP,
        settings=SftpSettings(
            host=host.strip("[]"), port=port, username=user, path=_sibling(path or ".")
        ),
        foreign_repository=repo.location,
        missing_secrets=("private_key", "password"),
    )


def _s3(rest: str, repo: ForeignRepository) -> VaultPlan | str:
    # borg 2 (borgstore) may put a profile or keys before "@"; they are never imported.
    at, slash = rest.find("@"), rest.find("/")
    if at >= 0 and (slash < 0 or at < slash):
        rest = rest[at + 1 :]
    scheme = "https"
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
    host, _, path = rest.partition("/")
    bucket, _, prefix = path.partition("/")
    host = host or "s3.amazonaws.com"
    if not host or not bucket:
        return "not an s3:host/bucket[/prefix] location"
    region = "us-east-1"
    endpoint = f"{scheme}://{host}"
    m = _AWS_REGION.match(host)
    if host == "s3.amazonaws.com":
        endpoint = ""
    elif m:
        endpoint, region = "", m["region"]
    prefix = prefix.strip("/")
    return VaultPlan(
        name=_name(repo, prefix or bucket),
        type=VaultType.S3,
        settings=S3Settings(
            endpoint=endpoint,
            bucket=bucket,
            prefix=f"{S3_PREFIX}{prefix}/" if prefix else S3_PREFIX,
            access_key="",
            secret_key="",
            region=region,
        ),
        foreign_repository=repo.location,
        missing_secrets=("access_key", "secret_key"),
    )
