#!/usr/bin/env python3
"""Writes grafana/dashboards/*.json with Grafana's grafana-foundation-sdk builders, from the
panel lists below and the settings in mixin/config.py (job selector, replica labels,
dashboard tags). Run after editing either:

    python3 grafana/build.py           # rewrite the JSON files
    python3 grafana/build.py --check   # exit 1 if a JSON file differs (tests/dashboards.rs)

python3 mixin/build.py runs this and the rule generators. The SDK's version is pinned in
grafana/requirements.txt (pip install -r grafana/requirements.txt).

Every query is filtered by the `job` and `instance` variables, and every panel about
targets aggregates the replica labels away (docs/mixin.md): `max` of a success, `min` of a
failure, `max` of an event, so two dbvigil replicas show each target once. The one panel
per replica by nature, "Scheduling lag (p99)", is listed in tests/dashboards.rs.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "mixin"))

from config import CONFIG  # noqa: E402
from promql import across_replicas, replicas, selector  # noqa: E402

try:
    from grafana_foundation_sdk.builders import (  # noqa: E402
        bargauge,
        common as common_b,
        dashboard as dash,
        prometheus,
        stat,
        statetimeline,
        table,
        timeseries,
    )
    from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
    from grafana_foundation_sdk.models import common, dashboard as dm  # noqa: E402
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat  # noqa: E402
except ImportError:
    sys.exit("grafana/build.py needs grafana-foundation-sdk: pip install -r grafana/requirements.txt")

OUT = ROOT / "grafana" / "dashboards"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every panel query's scope: the dashboard's job and instance variables.
SCOPE = ['job=~"$job"', 'instance=~"$instance"']


def v(metric, *matchers):
    """A dbvigil metric under the dashboard's job and instance variables."""
    return selector(metric, *matchers, scope=SCOPE)


def mx(expr):
    """Across replicas: up if any replica sees it up; an event if any replica saw it."""
    return across_replicas("max", expr)


def mn(expr):
    """Across replicas: a failure only as far as every replica sees it."""
    return across_replicas("min", expr)


def target(expr, legend="", instant=False, fmt=None):
    t = prometheus.Dataquery().datasource(DS).expr(expr).legend_format(legend)
    if instant:
        t = t.instant()
    if fmt == "table":
        t = t.format(PromQueryFormat.TABLE)
    return t


PANELS = {
    "timeseries": timeseries.Panel,
    "state-timeline": statetimeline.Panel,
    "bargauge": bargauge.Panel,
    "table": table.Panel,
    "stat": stat.Panel,
}


def panel(kind, title, targets, x, y, w, h, unit=None, description="", mappings=None, configure=None):
    p = PANELS[kind]().title(title).description(description).datasource(DS)
    p = p.grid_pos(dm.GridPos(x=x, y=y, w=w, h=h))
    for i, t in enumerate(targets):
        p = p.with_target(t.ref_id(chr(ord("A") + i)))
    if unit:
        p = p.unit(unit)
    if mappings:
        p = p.mappings(mappings)
    if configure:
        p = configure(p)
    return p


def value_map(*pairs):
    """[(value, text, color)] as a Grafana value mapping."""
    return [
        dm.ValueMap(
            options={
                str(val): dm.ValueMappingResult(text=text, color=color, index=i)
                for i, (val, text, color) in enumerate(pairs)
            }
        )
    ]


UP_DOWN = value_map((1, "up", "green"), (0, "down", "red"))
YES_NO = value_map((1, "yes", "red"), (0, "no", "green"))

# The SDK's AnnotationQuery has `expr` but not the Prometheus annotation's step,
# titleFormat and useValueForTime: those are added to its JSON in render().
ANNOTATION_EXTRAS = {}


def annotation(name, expr, color, title):
    ANNOTATION_EXTRAS[name] = {"step": "30s", "titleFormat": title, "useValueForTime": False}
    return dash.AnnotationQuery().name(name).datasource(DS).enable(True).icon_color(color).expr(expr)


def annotations():
    return [
        # The new server's identity and version come from dbvigil_server_info, joined on the
        # series of the replica that saw the switch, then counted once across replicas.
        annotation(
            "Switchovers",
            mx(
                f"increase({v('dbvigil_identity_changes_total')}[1m])"
                f" * on(job, {replicas()}, target) group_left(identity, version) {v('dbvigil_server_info')}"
            )
            + " > 0",
            "orange",
            "{{target}}: switchover, {{identity}} ({{version}}) answers now; "
            "GET /api/v1/targets/{{target}}/episodes or dbvigil report tells the whole story",
        ),
        annotation(
            "Writes lost",
            mx(f"increase({v('dbvigil_writes_lost_total')}[1m])") + " > 0",
            "red",
            "{{target}}: came back without acknowledged writes",
        ),
        annotation(
            "Maintenance windows",
            mx(v("dbvigil_maintenance_active")) + " == 1",
            "blue",
            "{{scope}} in maintenance",
        ),
        annotation(
            "Migrations",
            mx(f"changes({v('dbvigil_migration_last_run_end_timestamp_seconds')}[1m])") + " > 0",
            "purple",
            "{{target}}: {{tool}} migration ran",
        ),
    ]


def variable_query(name, query, multi=False, all_value=None):
    var = (
        dash.QueryVariable(name)
        .label(name.capitalize())
        .datasource(DS)
        .query({"query": query, "refId": "StandardVariableQuery"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if all_value is not None:
        var = var.all_value(all_value).current(dm.VariableOption(selected=True, text="All", value="$__all"))
    return var


def variables():
    """The data source, then job and instance: every dashboard's first variables."""
    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        variable_query("job", f"label_values(dbvigil_up{{{CONFIG['job_selector']}}}, job)"),
        # All is `.*`, not Grafana's list of the values it knows: a replica that starts
        # after the dashboard loaded is included too.
        variable_query("instance", 'label_values(dbvigil_up{job=~"$job"}, instance)', multi=True, all_value=".*"),
    ]


def dashboard(uid, title, description, panels, extra_variables=()):
    b = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(CONFIG["dashboard_tags"])
        .timezone("")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .version(1)
        .variables([*variables(), *extra_variables])
        .annotations(annotations())
        .link(
            dash.DashboardLink("dbvigil")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(CONFIG["dashboard_tags"][:1])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for i, p in enumerate(panels):
        b = b.with_panel(p.id(i + 1))
    return b.build()


def fleet():
    return dashboard(
        "dbvigil-fleet",
        "dbvigil / Fleet overview",
        "Every target's availability, outages, read-only state, identity changes and maintenance windows.",
        [
            panel(
                "state-timeline",
                "Up / down",
                [target(mx(v("dbvigil_up")), "{{target}}")],
                0, 0, 24, 9,
                description="Each target's state from its probes (every second by default), as sampled by the scrape: down when every replica sees it down.",
                mappings=UP_DOWN,
            ),
            panel(
                "bargauge",
                "Availability over the range",
                [target(mx(f"avg_over_time({v('dbvigil_up')}[$__range])"), "{{target}}", instant=True)],
                0, 9, 12, 8,
                unit="percentunit",
                description="Share of scrapes in the selected range at which the target was up, as the replica that saw it up most often saw it.",
            ),
            panel(
                "table",
                "Current outages",
                [target(mn(v("dbvigil_current_outage_duration_seconds")) + " > 0", "{{target}}", instant=True, fmt="table")],
                12, 9, 12, 8,
                unit="s",
                description="Targets down now for every replica, and for how long.",
            ),
            panel(
                "table",
                "Read-only targets",
                [target(mn(v("dbvigil_read_only")) + " == 1", "{{target}}", instant=True, fmt="table")],
                0, 17, 8, 8,
            ),
            panel(
                "bargauge",
                "Identity changes over the range",
                [target(mx(f"increase({v('dbvigil_identity_changes_total')}[$__range])") + " > 0", "{{target}}", instant=True)],
                8, 17, 8, 8,
                description="Switchovers and failovers: another server answered for the target.",
            ),
            panel(
                "table",
                "Active maintenance windows",
                [target(mx(v("dbvigil_maintenance_active")) + " == 1", "{{scope}}", instant=True, fmt="table")],
                16, 17, 8, 8,
            ),
            panel(
                "timeseries",
                "Outages started",
                [target(mx(f"increase({v('dbvigil_outages_total')}[$__rate_interval])") + " > 0", "{{target}}")],
                0, 25, 16, 8,
            ),
            panel(
                "bargauge",
                "Acknowledged writes lost over the range",
                [target(mx(f"increase({v('dbvigil_writes_lost_total')}[$__range])") + " > 0", "{{target}}", instant=True)],
                16, 25, 8, 8,
                description="Heartbeat writes a database confirmed and later no longer held: a failover to a lagging standby, a restore, a rollback. A lower bound of what applications lost.",
            ),
        ],
    )


def quantile(q, metric, by, *matchers):
    return f"histogram_quantile({q}, sum by ({by}) (rate({v(metric, *matchers)}[$__rate_interval])))"


def target_detail():
    t = 'target="$target"'
    check_down = mn(f"increase({v('dbvigil_check_down_seconds_total', t)}[$__range])")
    return dashboard(
        "dbvigil-target",
        "dbvigil / Target detail",
        "One target: each check, latency by phase, outage episodes, identity and version, replication and scheduling lag.",
        [
            panel(
                "state-timeline",
                "Checks",
                [target(mx(v("dbvigil_check_success", t)), "{{check}}")],
                0, 0, 24, 7,
                mappings=UP_DOWN,
            ),
            panel(
                "timeseries",
                "Latency by phase (p50, p99)",
                [
                    target(quantile(0.5, "dbvigil_phase_duration_seconds_bucket", "phase, le", t), "{{phase}} p50"),
                    target(quantile(0.99, "dbvigil_phase_duration_seconds_bucket", "phase, le", t), "{{phase}} p99"),
                ],
                0, 7, 12, 9,
                unit="s",
                description="The probes of every selected replica together.",
            ),
            panel(
                "timeseries",
                "Outage in progress, last outage",
                [
                    target(mn(v("dbvigil_current_outage_duration_seconds", t)), "current"),
                    target(mn(v("dbvigil_last_outage_duration_seconds", t)), "last finished"),
                ],
                12, 7, 12, 9,
                unit="s",
                description="Episodes start at the first failed probe and end at the first success: durations are within one probe interval of the truth. With several replicas, the shortest.",
            ),
            panel(
                "state-timeline",
                "Identity and version",
                [target(mx(v("dbvigil_server_info", t)), "{{version}} {{identity}}")],
                0, 16, 24, 6,
            ),
            panel(
                "timeseries",
                "Replication lag",
                [target(mx(v("dbvigil_replication_lag_seconds", t)), "lag")],
                0, 22, 12, 8,
                unit="s",
                description="Only for targets with replica_of.",
            ),
            panel(
                "timeseries",
                "Scheduling lag (p99)",
                [
                    target(
                        quantile(0.99, "dbvigil_probe_scheduling_lag_seconds_bucket", f"job, {replicas()}, le", t),
                        "{{instance}} p99",
                    )
                ],
                12, 22, 12, 8,
                unit="s",
                description="How late each replica's probes start: the exporter's own health, one line per replica.",
            ),
            panel(
                "stat",
                "Outages over the range",
                [target(mx(f"increase({v('dbvigil_outages_total', t)}[$__range])"), "outages", instant=True)],
                0, 30, 8, 5,
            ),
            panel(
                "stat",
                "Read-only",
                [target(mn(v("dbvigil_read_only", t)), "read-only", instant=True)],
                8, 30, 8, 5,
                mappings=YES_NO,
            ),
            panel(
                "stat",
                "Failures by reason over the range",
                [target(mx(f"increase({v('dbvigil_probe_failures_total', t)}[$__range])") + " > 0", "{{reason}}", instant=True)],
                16, 30, 8, 5,
            ),
            panel(
                "bargauge",
                "Last downtime by check, and read-only",
                [
                    target(mn(v("dbvigil_check_last_outage_duration_seconds", t)), "{{check}}", instant=True),
                    target(mn(v("dbvigil_last_read_only_duration_seconds", t)), "read-only", instant=True),
                ],
                0, 35, 12, 8,
                unit="s",
                description="Each check's last finished failure period, measured between probes with no failure threshold: through a switchover, write downtime (from the read-only turn) and read downtime (only the cut) come out apart.",
            ),
            panel(
                "stat",
                "Acknowledged writes lost",
                [
                    target(mx(f"increase({v('dbvigil_writes_lost_total', t)}[$__range])"), "over the range", instant=True),
                    target(mx(v("dbvigil_last_write_loss_seconds", t)), "last loss spans (s)", instant=True),
                ],
                12, 35, 12, 8,
                description="Heartbeats the database confirmed and later no longer held, and the time the last loss spans: the failover's RPO as the probes saw it, a lower bound.",
            ),
            panel(
                "stat",
                "Availability by check over the range",
                [
                    target(
                        f"clamp_min(1 - {check_down} / $__range_s, 0)",
                        "{{check}}",
                        instant=True,
                    )
                ],
                0, 43, 24, 5,
                unit="percentunit",
                description="The share of the range each check worked, from the seconds it failed as the probes measured them (to one probe interval), not from samples at scrape time: an outage shorter than a scrape still counts.",
                configure=lambda p: p.reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"])).text_mode(
                    common.BigValueTextMode.VALUE_AND_NAME
                ),
            ),
        ],
        [variable_query("target", 'label_values(dbvigil_up{job=~"$job", instance=~"$instance"}, target)')],
    )


def groups():
    g = 'group=~"$group"'
    return dashboard(
        "dbvigil-groups",
        "dbvigil / Failover groups",
        "Which member of each failover group is active, who is eligible, and when it switched.",
        [
            panel(
                "state-timeline",
                "Active member",
                [target(mx(v("dbvigil_group_active_member", g)) + " == 1", "{{group}}: {{member}}")],
                0, 0, 24, 8,
            ),
            panel(
                "state-timeline",
                "Eligible members",
                [target(mx(v("dbvigil_group_member_eligible", g)), "{{group}}: {{member}}")],
                0, 8, 24, 8,
                mappings=value_map((1, "eligible", "green"), (0, "not eligible", "red")),
            ),
            panel(
                "timeseries",
                "Eligible member count",
                [target(mx(v("dbvigil_group_eligible_members", g)), "{{group}}")],
                0, 16, 12, 8,
            ),
            panel(
                "timeseries",
                "Switches",
                [target(mx(f"increase({v('dbvigil_group_switches_total', g)}[$__rate_interval])") + " > 0", "{{group}}")],
                12, 16, 12, 8,
            ),
            panel(
                "stat",
                "Failovers: time with no active member, writes lost",
                [
                    target(mx(v("dbvigil_group_last_no_active_duration_seconds", g)), "{{group}}: last gap (s)", instant=True),
                    target(
                        mx(f"increase({v('dbvigil_group_writes_lost_total', g)}[$__range])"),
                        "{{group}}: writes lost over the range",
                        instant=True,
                    ),
                ],
                0, 24, 24, 5,
                description="How long the last failover left the group with no eligible member, and the acknowledged writes the new active member lacked (judged on the old member's heartbeat as the new one read it; needs replica_of): a lower bound of what applications lost.",
            ),
        ],
        [
            variable_query(
                "group", 'label_values(dbvigil_group_eligible_members{job=~"$job", instance=~"$instance"}, group)', multi=True
            )
        ],
    )


def migrations():
    return dashboard(
        "dbvigil-migrations",
        "dbvigil / Migrations and maintenance",
        "Versions per target and tool, migration runs with their result and duration, failed or dirty states, locks held, maintenance windows.",
        [
            panel(
                "table",
                "Versions",
                [target(mx(v("dbvigil_migration_version_info")), "", instant=True, fmt="table")],
                0, 0, 12, 8,
            ),
            panel(
                "table",
                "Last runs",
                [
                    target(mx(v("dbvigil_migration_last_run_success")), "", instant=True, fmt="table"),
                    target(mx(v("dbvigil_migration_last_run_duration_seconds")), "", instant=True, fmt="table"),
                ],
                12, 0, 12, 8,
            ),
            panel(
                "state-timeline",
                "Failed or dirty",
                [target(mx(v("dbvigil_migration_failed")), "{{target}} {{tool}}")],
                0, 8, 12, 7,
                mappings=YES_NO,
            ),
            panel(
                "timeseries",
                "Lock held for",
                [target(mx(v("dbvigil_migration_in_progress_seconds")), "{{target}} {{tool}}")],
                12, 8, 12, 7,
                unit="s",
            ),
            panel(
                "timeseries",
                "Pending scripts and checksum drift",
                [
                    target(mx(v("dbvigil_migration_pending")), "{{target}} pending"),
                    target(mx(v("dbvigil_migration_checksum_drift")), "{{target}} drift"),
                ],
                0, 15, 12, 8,
            ),
            panel(
                "state-timeline",
                "Maintenance windows",
                [target(mx(v("dbvigil_maintenance_active")), "{{scope}}")],
                12, 15, 12, 8,
                mappings=value_map((1, "maintenance", "blue"), (0, "normal", "transparent")),
            ),
            panel(
                "stat",
                "History readable",
                [target(mx(v("dbvigil_migration_read_success")), "{{target}}", instant=True)],
                0, 23, 24, 4,
                mappings=value_map((1, "readable", "green"), (0, "unreadable", "red")),
            ),
        ],
    )


DASHBOARDS = {
    "fleet.json": fleet,
    "target.json": target_detail,
    "groups.json": groups,
    "migrations.json": migrations,
}


def render(build):
    board = json.loads(json.dumps(build(), cls=JSONEncoder))
    for a in board["annotations"]["list"]:
        a.update(ANNOTATION_EXTRAS[a["name"]])
    return json.dumps(board, indent=2) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build)
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}: run python3 mixin/build.py", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
