#!/usr/bin/env python3
"""Regenerates everything the mixin settings (mixin/config.py) shape: the Grafana
dashboards, the alert rules and the Kubernetes PrometheusRule, in that order (the
PrometheusRule is made from the rule file).

    python3 mixin/build.py           # rewrite
    python3 mixin/build.py --check   # exit 1 if any generated file is out of date
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATORS = [
    "grafana/build.py",
    "alerts/build.py",
    "compose/kubernetes/build-prometheusrule.py",
]


def main():
    args = sys.argv[1:]
    failed = [g for g in GENERATORS if subprocess.run([sys.executable, str(ROOT / g), *args]).returncode != 0]
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
