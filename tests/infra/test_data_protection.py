"""The database is recoverable (docs/restore.md): point-in-time recovery, delete protection and
backup schedules as configured, and an adopted database changed only when the config says so."""

from __future__ import annotations

import pytest

from infra.config import InfraConfigError
from tests.infra import harness

DATABASE = "gcp:firestore/database:Database"
SCHEDULE = "gcp:firestore/backupSchedule:BackupSchedule"
DAY = 86_400
EXISTING = {
    **harness.BASE_CONFIG,
    "inlet:firestoreDatabase": "(default)",
    "inlet:firestoreExisting": "true",
}


def schedules(deployment: harness.Deployment) -> dict[str, dict]:
    return {r.name: r.inputs for r in deployment.of_type(SCHEDULE)}


def test_by_default_the_database_has_pitr_delete_protection_and_14_daily_backups():
    deployment = harness.deploy()
    database = deployment.one(DATABASE, "firestore").inputs
    assert database["pointInTimeRecoveryEnablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert database["deleteProtectionState"] == "DELETE_PROTECTION_ENABLED"
    assert database["deletionPolicy"] == "ABANDON"
    assert schedules(deployment) == {
        "backup-daily": {
            "project": harness.PROJECT,
            "database": database["name"],
            "retention": f"{14 * DAY}s",
            "dailyRecurrence": {},
        }
    }
    (daily,) = deployment.of_type(SCHEDULE)
    assert f"{DATABASE}::firestore" in daily.depends_on


def test_protection_and_retention_come_from_config():
    deployment = harness.deploy(
        {
            **harness.BASE_CONFIG,
            "inlet:pointInTimeRecovery": "false",
            "inlet:deleteProtection": "false",
            "inlet:backupRetentionDays": "30",
            "inlet:weeklyBackupRetentionDays": "98",
        }
    )
    database = deployment.one(DATABASE, "firestore").inputs
    assert database["pointInTimeRecoveryEnablement"] == "POINT_IN_TIME_RECOVERY_DISABLED"
    assert database["deleteProtectionState"] == "DELETE_PROTECTION_DISABLED"
    declared = schedules(deployment)
    assert declared["backup-daily"]["retention"] == f"{30 * DAY}s"
    assert declared["backup-weekly"]["retention"] == f"{98 * DAY}s"
    assert declared["backup-weekly"]["weeklyRecurrence"] == {"day": "SUNDAY"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("inlet:backupRetentionDays", "99"),  # Firestore keeps a backup at most 14 weeks
        ("inlet:backupRetentionDays", "0"),
        ("inlet:weeklyBackupRetentionDays", "two weeks"),
        ("inlet:pointInTimeRecovery", "on"),
        ("inlet:deleteProtection", "1"),
    ],
)
def test_a_malformed_protection_setting_fails_naming_it(key, value):
    with pytest.raises(InfraConfigError) as raised:
        harness.deploy({**harness.BASE_CONFIG, key: value})
    assert key in str(raised.value)


def test_an_existing_database_is_left_alone_by_default():
    deployment = harness.deploy(
        {**EXISTING, "inlet:pointInTimeRecovery": "false", "inlet:backupRetentionDays": "7"}
    )
    (database,) = deployment.of_type(DATABASE)
    assert database.mode == "read"
    # A read sends no settings, and no schedule is added beside the ones its owners may have.
    assert "pointInTimeRecoveryEnablement" not in database.inputs
    assert "deleteProtectionState" not in database.inputs
    assert schedules(deployment) == {}


def test_an_existing_database_is_adopted_with_the_configured_protection_when_asked():
    deployment = harness.deploy(
        {**EXISTING, "inlet:firestoreManageExisting": "true", "inlet:backupRetentionDays": "21"}
    )
    (database,) = deployment.of_type(DATABASE)
    assert database.mode == "import"  # adopted into the stack, never created
    assert database.inputs["name"] == "(default)"
    assert database.inputs["pointInTimeRecoveryEnablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert database.inputs["deleteProtectionState"] == "DELETE_PROTECTION_ENABLED"
    assert database.inputs["deletionPolicy"] == "ABANDON"
    assert schedules(deployment)["backup-daily"]["retention"] == f"{21 * DAY}s"
    assert schedules(deployment)["backup-daily"]["database"] == "(default)"
