"""PromQL pieces built from the settings in config.py, shared by the dashboard and rule
generators (grafana/build.py, alerts/build.py)."""

from config import CONFIG


def replicas():
    """The replica labels as a PromQL label list: `instance, pod`."""
    return ", ".join(CONFIG["replica_labels"])


def across_replicas(op, expr):
    """`op` over the replicas of each series: `max without(instance, pod) (expr)`.

    max of a success gauge is "some replica sees it work", so a failure needs every
    replica to agree; min of a failure gauge is the same agreement; max of an event
    counter's increase counts an event once however many replicas saw it."""
    return f"{op} without({replicas()}) ({expr})"


def selector(metric, *matchers, scope):
    """`metric{scope..., matchers...}`, where scope is the rules' job selector or the
    dashboards' variables."""
    inner = ", ".join([*scope, *matchers])
    return f"{metric}{{{inner}}}"
