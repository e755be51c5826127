"""Realistic foreign configurations, written into temporary home and /etc folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODERN_BORGMATIC = """\
# borgmatic 1.8 configuration for alice's laptop
source_directories:
    - /home/alice          # everything personal
    - /etc
    - ~/projects

repositories:
    - path: ssh://backup@nas.example.net:2222/./borg/alice
      label: nas
    - path: /mnt/usb/borg
      label: usb

exclude_patterns:
    - '*.pyc'
    - /home/*/.cache
    - sh:/home/alice/**/node_modules
    - 're:^home/alice/Downloads/.*\\.iso$'
    - pp:/home/alice/tmp
    - pf:/etc/shadow-
exclude_caches: true

encryption_passphrase: "never imported"
compression: zstd,3

keep_within: 2d
keep_daily: 7
keep_weekly: 4
keep_monthly: 6
keep_yearly: 1

before_backup:
    - echo "Starting a backup."
after_backup:
    - echo "Finished a backup."

postgresql_databases:
    - name: inventory
      hostname: db.internal
      username: backup
      password: trustsome1
"""

LEGACY_BORGMATIC = """\
location:
    source_directories:
        - /srv/www
        - /var/lib/app
    repositories:
        - backup@backup.example.org:repos/web
        - /var/backups/borg/
    exclude_patterns:
        - /srv/www/cache
    one_file_system: true

storage:
    encryption_passcommand: cat /root/.borg-passphrase
    compression: lz4

retention:
    keep_hourly: 24
    keep_daily: 7
    prefix: "web-"

hooks:
    before_backup:
        - systemctl stop app
    after_backup:
        - systemctl start app
    mysql_databases:
        - name: wordpress
        - name: all
          hostname: db
"""

RESTICPROFILE_TOML = """\
version = "1"

[global]
priority = "low"

[default]
repository = "local:/srv/restic/home"
password-file = "key"
initialize = false

[default.backup]
source = ["~/Documents", "~/Pictures"]
exclude = ["*.tmp", "/home/alice/Documents/scratch", "node_modules/cache", "!keep.tmp"]
iexclude = ["*.ISO"]
exclude-caches = true
schedule = "*-*-* 01:30"
run-before = "echo before"

[default.retention]
after-backup = true
keep-last = 10
keep-daily = 14
keep-within = "1y6m"
keep-hourly = 24
keep-tag = ["forever"]

[offsite]
inherit = "default"
repository = "s3:s3.eu-central-1.amazonaws.com/alice-backups/laptop"

[offsite.backup]
source = ["/etc"]
schedule = "Mon..Fri *-*-* 03:15"

[offsite.retention]
keep-weekly = 8
"""

AUTORESTIC_YAML = """\
version: 2

locations:
  home:
    from:
      - /home/alice
      - ./notes
    to:
      - local-disk
      - remote
    cron: '0 3 * * *'
    hooks:
      before:
        - echo "autorestic start"
      after:
        - echo "autorestic done"
    options:
      backup:
        exclude:
          - '.cache'
          - '*.log'
      forget:
        keep-last: 5
        keep-weekly: 4
        keep-monthly: [12]
    forget: prune
  media:
    type: volume
    from: media-volume
    to: remote

backends:
  local-disk:
    type: local
    path: /mnt/backup/restic
  remote:
    type: sftp
    path: alice@backup.example.org:/srv/restic/alice
    key: do-not-import
"""

RESTIC_ENV = """\
# restic settings for the nightly systemd timer
export RESTIC_REPOSITORY="sftp:alice@files.example.com:/backups/laptop"
RESTIC_PASSWORD_FILE=/home/alice/.config/restic/password
BACKUP_PATHS="/home/alice/Music /home/alice/Videos"
RESTIC_EXCLUDE_FILE=excludes.txt
RESTIC_RETENTION_DAYS=7
RESTIC_FORGET_ARGS="--keep-weekly 5 --keep-monthly=3"
AWS_SECRET_ACCESS_KEY=should-not-be-read
"""

RESTIC_EXCLUDES = """\
# big things
*.iso
/home/alice/Videos/raw
"""

ENVIRONMENT = {
    "PATH": "/usr/bin",
    "RESTIC_REPOSITORY": "/var/backups/restic",
    "RESTIC_PASSWORD": "hunter2",
    "RESTIC_BACKUP_PATHS": "/srv/data",
}


@dataclass(frozen=True)
class Tree:
    home: Path
    etc: Path

    @property
    def modern_borgmatic(self) -> Path:
        return self.home / ".config" / "borgmatic" / "config.yaml"

    @property
    def legacy_borgmatic(self) -> Path:
        return self.etc / "borgmatic" / "config.yaml"

    @property
    def resticprofile(self) -> Path:
        return self.home / ".config" / "resticprofile" / "profiles.toml"

    @property
    def autorestic(self) -> Path:
        return self.home / ".autorestic.yml"

    @property
    def restic_env(self) -> Path:
        return self.home / ".config" / "restic" / "laptop.env"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sample_tree(root: Path) -> Tree:
    """A home and an /etc holding one sample of each product."""
    tree = Tree(home=root / "home" / "alice", etc=root / "etc")
    write(tree.modern_borgmatic, MODERN_BORGMATIC)
    write(tree.legacy_borgmatic, LEGACY_BORGMATIC)
    write(tree.resticprofile, RESTICPROFILE_TOML)
    write(tree.autorestic, AUTORESTIC_YAML)
    write(tree.restic_env, RESTIC_ENV)
    write(tree.restic_env.parent / "excludes.txt", RESTIC_EXCLUDES)
    return tree
