"""deploy/: the alert rules and the scrape configuration are valid (promtool, where installed;
YAML otherwise), and every metric the alerts and the Grafana dashboard read is one a scrape of
the app actually has."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "skillswap.json"
METRIC = re.compile(r"\bskillswap_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }


async def scraped_names(api) -> set[str]:
    response = await api.get("/metrics")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_the_alert_rules_cover_what_operations_needs():
    alerts = alert_expressions()
    for expected in (
        "SkillSwapHigh5xxRate",
        "SkillSwapP99LatencyHigh",
        "SkillSwapOutboxStuck",
        "SkillSwapTasksFailing",
        "SkillSwapLedgerCheckFailed",
    ):
        assert expected in alerts, expected
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


async def test_every_metric_the_alerts_and_the_dashboard_read_is_exported(api):
    exported = await scraped_names(api)
    read = {**alert_expressions(), **dashboard_expressions()}
    assert len(read) > 20
    for where, expression in read.items():
        used = set(METRIC.findall(expression))
        assert used, where
        assert used <= exported, (where, used - exported)


def test_the_dashboard_is_grafana_json_on_a_prometheus_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "skillswap"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["type"] == "prometheus"
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()


@pytest.mark.skipif(
    shutil.which("promtool") is None and os.environ.get("CI") != "true",
    reason="promtool is not installed",
)
def test_promtool_accepts_the_rules_and_the_scrape_config(tmp_path: Path):
    assert shutil.which("promtool"), "CI must have promtool (.ci/run installs it)"
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The example reads its token from a file only a real Prometheus host has.
    token = tmp_path / "token"
    token.write_text("t")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        SCRAPE_CONFIG.read_text().replace("/etc/prometheus/skillswap-metrics-token", str(token))
    )
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    checked = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
