"""The mixin's settings: the one place to adapt dbvigil's dashboards and alert rules to a
Prometheus setup, like a jsonnet mixin's `_config`. Edit, then regenerate everything:

    python3 mixin/build.py           # dashboards, alert rules and the PrometheusRule
    python3 mixin/build.py --check   # exit 1 if a generated file is out of date

docs/mixin.md explains each setting and the replica semantics.
"""

CONFIG = {
    # Selects dbvigil's series in the alert rules, and the jobs the dashboards' `job`
    # variable offers. The default matches every shipped scrape configuration: job
    # `dbvigil` (prometheus/, compose/prometheus/, the ServiceMonitor of a Service named
    # dbvigil) and `<namespace>/dbvigil-sharded` (the sharded manifest's PodMonitor).
    "job_selector": 'job=~".*dbvigil.*"',
    # The labels that differ between two dbvigil replicas probing the same target: the
    # scrape address, and the pod that prometheus-operator's relabelling adds. Rules and
    # panels that speak about targets aggregate these away, so two replicas count a target
    # once and page once.
    "replica_labels": ["instance", "pod"],
    # Each alert's runbook_url is this followed by `#` and the alert's name in lower case.
    "runbook_url": "https://github.com/dbvigil/dbvigil/blob/main/docs/runbooks.md",
    # Tags of every dashboard; the dashboards link to each other through the first one.
    "dashboard_tags": ["dbvigil"],
}
