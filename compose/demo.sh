#!/usr/bin/env bash
# Replays the availability monitor's test (shared/background) against the compose stack, so
# the dashboards show each event: MySQL read-only and back, a database stopped and started,
# and a migration run inside a maintenance window.
#   docker compose -f compose/docker-compose.yml up -d --build && compose/demo.sh
set -euo pipefail
cd "$(dirname "$0")"
dc() { docker compose -f docker-compose.yml "$@"; }
step() { printf '\n== %s\n' "$*"; }
wait_for() { # seconds, then a line so the dashboards have something to show
  sleep "$1"
}

step "waiting for dbvigil"
until curl -fsS http://localhost:10150/-/ready >/dev/null; do sleep 2; done
wait_for 30

step "MySQL read-only for 60 s (DbvigilUnexpectedReadOnly after 1 min)"
dc exec -T mysql mysql -uroot -proot-demo -e "SET GLOBAL read_only = ON"
wait_for 60
dc exec -T mysql mysql -uroot -proot-demo -e "SET GLOBAL read_only = OFF"
wait_for 30

step "PostgreSQL stopped for 45 s (an outage episode; DbvigilTargetDown after 30 s)"
dc stop postgres
wait_for 45
dc start postgres
wait_for 30

step "a migration of zipster inside a maintenance window"
dc exec -T dbvigil dbvigil migrate --config.file /etc/dbvigil/dbvigil.yml --target zipster \
  run --maintenance --maintenance-for 10m
wait_for 30

step "done: open http://localhost:3000 (Fleet overview, Target detail, Migrations and maintenance)"
