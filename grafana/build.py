#!/usr/bin/env python3
"""Writes grafana/dashboards/*.json from the panel lists below.

The dashboards are data, but their shared parts (the datasource variable, annotations,
value mappings) are easier to keep consistent as code. Run after editing:

    python3 grafana/build.py           # rewrite the JSON files
    python3 grafana/build.py --check   # exit 1 if a JSON file differs (tests/dashboards.rs)
"""
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}


def target(expr, legend="", instant=False, fmt=None):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": "A"}
    if instant:
        t["instant"] = True
        t["range"] = False
    if fmt:
        t["format"] = fmt
    return t


def panel(kind, title, targets, x, y, w, h, unit=None, description="", mappings=None, extra=None):
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if mappings:
        p["fieldConfig"]["defaults"]["mappings"] = mappings
    if extra:
        p.update(extra)
    return p


def value_map(*pairs):
    """[(value, text, color)] as a Grafana value mapping."""
    return [
        {
            "type": "value",
            "options": {str(v): {"text": text, "color": color, "index": i} for i, (v, text, color) in enumerate(pairs)},
        }
    ]


UP_DOWN = value_map((1, "up", "green"), (0, "down", "red"))
YES_NO = value_map((1, "yes", "red"), (0, "no", "green"))


def annotation(name, expr, color, title):
    return {
        "name": name,
        "datasource": DS,
        "enable": True,
        "iconColor": color,
        "expr": expr,
        "step": "30s",
        "titleFormat": title,
        "useValueForTime": False,
    }


ANNOTATIONS = [
    # The new server's identity and version come from dbvigil_server_info, joined on the
    # series of the exporter that saw the switch.
    annotation(
        "Switchovers",
        "increase(dbvigil_identity_changes_total[1m])"
        " * on(job, instance, target) group_left(identity, version) dbvigil_server_info > 0",
        "orange",
        "{{target}}: switchover, {{identity}} ({{version}}) answers now; "
        "GET /api/v1/targets/{{target}}/episodes or dbvigil report tells the whole story",
    ),
    annotation(
        "Writes lost",
        "increase(dbvigil_writes_lost_total[1m]) > 0",
        "red",
        "{{target}}: came back without acknowledged writes",
    ),
    annotation(
        "Maintenance windows",
        "dbvigil_maintenance_active == 1",
        "blue",
        "{{scope}} in maintenance",
    ),
    annotation(
        "Migrations",
        "changes(dbvigil_migration_last_run_end_timestamp_seconds[1m]) > 0",
        "purple",
        "{{target}}: {{tool}} migration ran",
    ),
]


def variable_datasource():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
    }


def variable_query(name, query, multi=False):
    return {
        "name": name,
        "label": name.capitalize(),
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": "StandardVariableQuery"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "hide": 0,
    }


def dashboard(uid, title, description, panels, variables=()):
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["dbvigil"],
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "templating": {"list": [variable_datasource(), *variables]},
        "annotations": {"list": ANNOTATIONS},
        "links": [
            {"title": "dbvigil", "type": "dashboards", "tags": ["dbvigil"], "asDropdown": True}
        ],
        "panels": [dict(p, id=i + 1) for i, p in enumerate(panels)],
    }


FLEET = dashboard(
    "dbvigil-fleet",
    "dbvigil / Fleet overview",
    "Every target's availability, outages, read-only state, identity changes and maintenance windows.",
    [
        panel(
            "state-timeline",
            "Up / down",
            [target("dbvigil_up", "{{target}}")],
            0, 0, 24, 9,
            description="Each target's state from its probes (every second by default), as sampled by the scrape.",
            mappings=UP_DOWN,
        ),
        panel(
            "bargauge",
            "Availability over the range",
            [target("avg_over_time(dbvigil_up[$__range])", "{{target}}", instant=True)],
            0, 9, 12, 8,
            unit="percentunit",
            description="Share of scrapes in the selected range at which the target was up.",
        ),
        panel(
            "table",
            "Current outages",
            [target("dbvigil_current_outage_duration_seconds > 0", "{{target}}", instant=True, fmt="table")],
            12, 9, 12, 8,
            unit="s",
            description="Targets down now, and for how long.",
        ),
        panel(
            "table",
            "Read-only targets",
            [target("dbvigil_read_only == 1", "{{target}}", instant=True, fmt="table")],
            0, 17, 8, 8,
        ),
        panel(
            "bargauge",
            "Identity changes over the range",
            [target("increase(dbvigil_identity_changes_total[$__range]) > 0", "{{target}}", instant=True)],
            8, 17, 8, 8,
            description="Switchovers and failovers: another server answered for the target.",
        ),
        panel(
            "table",
            "Active maintenance windows",
            [target("dbvigil_maintenance_active == 1", "{{scope}}", instant=True, fmt="table")],
            16, 17, 8, 8,
        ),
        panel(
            "timeseries",
            "Outages started",
            [target("increase(dbvigil_outages_total[$__rate_interval]) > 0", "{{target}}")],
            0, 25, 16, 8,
        ),
        panel(
            "bargauge",
            "Acknowledged writes lost over the range",
            [target("increase(dbvigil_writes_lost_total[$__range]) > 0", "{{target}}", instant=True)],
            16, 25, 8, 8,
            description="Heartbeat writes a database confirmed and later no longer held: a failover to a lagging standby, a restore, a rollback. A lower bound of what applications lost.",
        ),
    ],
)

TARGET = dashboard(
    "dbvigil-target",
    "dbvigil / Target detail",
    "One target: each check, latency by phase, outage episodes, identity and version, replication and scheduling lag.",
    [
        panel(
            "state-timeline",
            "Checks",
            [target('dbvigil_check_success{target="$target"}', "{{check}}")],
            0, 0, 24, 7,
            mappings=UP_DOWN,
        ),
        panel(
            "timeseries",
            "Latency by phase (p50, p99)",
            [
                target(
                    'histogram_quantile(0.5, sum by (phase, le) (rate(dbvigil_phase_duration_seconds_bucket{target="$target"}[$__rate_interval])))',
                    "{{phase}} p50",
                ),
                target(
                    'histogram_quantile(0.99, sum by (phase, le) (rate(dbvigil_phase_duration_seconds_bucket{target="$target"}[$__rate_interval])))',
                    "{{phase}} p99",
                ),
            ],
            0, 7, 12, 9,
            unit="s",
        ),
        panel(
            "timeseries",
            "Outage in progress, last outage",
            [
                target('dbvigil_current_outage_duration_seconds{target="$target"}', "current"),
                target('dbvigil_last_outage_duration_seconds{target="$target"}', "last finished"),
            ],
            12, 7, 12, 9,
            unit="s",
            description="Episodes start at the first failed probe and end at the first success: durations are within one probe interval of the truth.",
        ),
        panel(
            "state-timeline",
            "Identity and version",
            [target('dbvigil_server_info{target="$target"}', "{{version}} {{identity}}")],
            0, 16, 24, 6,
        ),
        panel(
            "timeseries",
            "Replication lag",
            [target('dbvigil_replication_lag_seconds{target="$target"}', "lag")],
            0, 22, 12, 8,
            unit="s",
            description="Only for targets with replica_of.",
        ),
        panel(
            "timeseries",
            "Scheduling lag (p99)",
            [
                target(
                    'histogram_quantile(0.99, sum by (le) (rate(dbvigil_probe_scheduling_lag_seconds_bucket{target="$target"}[$__rate_interval])))',
                    "p99",
                )
            ],
            12, 22, 12, 8,
            unit="s",
        ),
        panel(
            "stat",
            "Outages over the range",
            [target('increase(dbvigil_outages_total{target="$target"}[$__range])', "outages", instant=True)],
            0, 30, 8, 5,
        ),
        panel(
            "stat",
            "Read-only",
            [target('dbvigil_read_only{target="$target"}', "read-only", instant=True)],
            8, 30, 8, 5,
            mappings=YES_NO,
        ),
        panel(
            "stat",
            "Failures by reason over the range",
            [target('sum by (reason) (increase(dbvigil_probe_failures_total{target="$target"}[$__range])) > 0', "{{reason}}", instant=True)],
            16, 30, 8, 5,
        ),
        panel(
            "bargauge",
            "Last downtime by check, and read-only",
            [
                target('dbvigil_check_last_outage_duration_seconds{target="$target"}', "{{check}}", instant=True),
                target('dbvigil_last_read_only_duration_seconds{target="$target"}', "read-only", instant=True),
            ],
            0, 35, 12, 8,
            unit="s",
            description="Each check's last finished failure period, measured between probes with no failure threshold: through a switchover, write downtime (from the read-only turn) and read downtime (only the cut) come out apart.",
        ),
        panel(
            "stat",
            "Acknowledged writes lost",
            [
                target('increase(dbvigil_writes_lost_total{target="$target"}[$__range])', "over the range", instant=True),
                target('dbvigil_last_write_loss_seconds{target="$target"}', "last loss spans (s)", instant=True),
            ],
            12, 35, 12, 8,
            description="Heartbeats the database confirmed and later no longer held, and the time the last loss spans: the failover's RPO as the probes saw it, a lower bound.",
        ),
        panel(
            "stat",
            "Availability by check over the range",
            [
                target(
                    'clamp_min(1 - increase(dbvigil_check_down_seconds_total{target="$target"}[$__range]) / $__range_s, 0)',
                    "{{check}}",
                    instant=True,
                )
            ],
            0, 43, 24, 5,
            unit="percentunit",
            description="The share of the range each check worked, from the seconds it failed as the probes measured them (to one probe interval), not from samples at scrape time: an outage shorter than a scrape still counts.",
            extra={"options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"}},
        ),
    ],
    [variable_query("target", "label_values(dbvigil_up, target)")],
)

GROUPS = dashboard(
    "dbvigil-groups",
    "dbvigil / Failover groups",
    "Which member of each failover group is active, who is eligible, and when it switched.",
    [
        panel(
            "state-timeline",
            "Active member",
            [target('dbvigil_group_active_member{group=~"$group"} == 1', "{{group}}: {{member}}")],
            0, 0, 24, 8,
        ),
        panel(
            "state-timeline",
            "Eligible members",
            [target('dbvigil_group_member_eligible{group=~"$group"}', "{{group}}: {{member}}")],
            0, 8, 24, 8,
            mappings=value_map((1, "eligible", "green"), (0, "not eligible", "red")),
        ),
        panel(
            "timeseries",
            "Eligible member count",
            [target('dbvigil_group_eligible_members{group=~"$group"}', "{{group}}")],
            0, 16, 12, 8,
        ),
        panel(
            "timeseries",
            "Switches",
            [target('increase(dbvigil_group_switches_total{group=~"$group"}[$__rate_interval]) > 0', "{{group}}")],
            12, 16, 12, 8,
        ),
    ],
    [variable_query("group", "label_values(dbvigil_group_eligible_members, group)", multi=True)],
)

MIGRATIONS = dashboard(
    "dbvigil-migrations",
    "dbvigil / Migrations and maintenance",
    "Versions per target and tool, migration runs with their result and duration, failed or dirty states, locks held, maintenance windows.",
    [
        panel(
            "table",
            "Versions",
            [target("dbvigil_migration_version_info", "", instant=True, fmt="table")],
            0, 0, 12, 8,
        ),
        panel(
            "table",
            "Last runs",
            [
                target("dbvigil_migration_last_run_success", "", instant=True, fmt="table"),
                target("dbvigil_migration_last_run_duration_seconds", "", instant=True, fmt="table"),
            ],
            12, 0, 12, 8,
        ),
        panel(
            "state-timeline",
            "Failed or dirty",
            [target("dbvigil_migration_failed", "{{target}} {{tool}}")],
            0, 8, 12, 7,
            mappings=YES_NO,
        ),
        panel(
            "timeseries",
            "Lock held for",
            [target("dbvigil_migration_in_progress_seconds", "{{target}} {{tool}}")],
            12, 8, 12, 7,
            unit="s",
        ),
        panel(
            "timeseries",
            "Pending scripts and checksum drift",
            [
                target("dbvigil_migration_pending", "{{target}} pending"),
                target("dbvigil_migration_checksum_drift", "{{target}} drift"),
            ],
            0, 15, 12, 8,
        ),
        panel(
            "state-timeline",
            "Maintenance windows",
            [target("dbvigil_maintenance_active", "{{scope}}")],
            12, 15, 12, 8,
            mappings=value_map((1, "maintenance", "blue"), (0, "normal", "transparent")),
        ),
        panel(
            "stat",
            "History readable",
            [target("dbvigil_migration_read_success", "{{target}}", instant=True)],
            0, 23, 24, 4,
            mappings=value_map((1, "readable", "green"), (0, "unreadable", "red")),
        ),
    ],
)

DASHBOARDS = {
    "fleet.json": FLEET,
    "target.json": TARGET,
    "groups.json": GROUPS,
    "migrations.json": MIGRATIONS,
}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, board in DASHBOARDS.items():
        text = json.dumps(board, indent=2) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}: run python3 grafana/build.py", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
