"""The Prometheus files in deploy/ name only metrics the server exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from comet.server.metrics import ServerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def exported_names() -> set[str]:
    names = set()
    for family in ServerMetrics().registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
    return names


def test_alert_rules_use_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "comet-alerts.yml").read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {"CometDeviceNotBackedUp", "CometJobFailureRate"}
    used = {name for r in rules for name in re.findall(r"\bcomet_[a-z_]+", r["expr"])}
    assert used and used <= exported_names()
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["comet-alerts.yml"]
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
