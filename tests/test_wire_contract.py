"""The committed generated code matches the .proto files."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [str(ROOT / "proto" / "generate"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "up to date" in result.stdout


def test_enum_values_reuse_comet_codes() -> None:
    from comet.v1 import common_pb2

    assert common_pb2.JOB_CLASSIFICATION_BACKUP == 4001
    assert common_pb2.JOB_CLASSIFICATION_DEEP_VERIFY == 4010
    assert common_pb2.JOB_STATUS_SUCCESS == 5000
    assert common_pb2.JOB_STATUS_ABANDONED == 7007
    assert common_pb2.VAULT_TYPE_LOCAL == 1002
    assert common_pb2.SCHEDULE_FREQUENCY_PERIODIC == 8015
    assert common_pb2.RETENTION_RANGE_LAST_X_BACKUPS_ONE_PER_MONTH == 909
    assert common_pb2.ARCHIVE_FORMAT_TAR_ZST == 4
