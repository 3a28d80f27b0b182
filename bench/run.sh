#!/usr/bin/env bash
# The side-by-side benchmark. Installs what is missing (Debian's peer exporters, wrk and
# perf, OpenSSH for scenario 8's bastion; dbmate from npm; sqlx-cli from crates.io), builds
# dbvigil in release, starts throwaway PostgreSQL and MariaDB servers (and an sshd), runs
# every tool against them and rewrites the
# generated part of docs/benchmarks.md. Arguments go to bench/bench.py (--only 2,3, --smoke, ...).
# Run as root on an otherwise idle machine: the figures are only as quiet as the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_missing=()
for pkg in prometheus-postgres-exporter prometheus-mysqld-exporter prometheus-sql-exporter \
           prometheus-blackbox-exporter wrk linux-perf postgresql-client mariadb-client python3 \
           openssh-server openssh-client; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_missing+=("$pkg")
done
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_missing+=(postgresql)
command -v mariadbd >/dev/null || apt_missing+=(mariadb-server)
if ((${#apt_missing[@]})); then
  echo "installing: ${apt_missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${apt_missing[@]}"
fi

smoke=false
migrations=true   # scenario 6 needs dbmate and sqlx-cli (the latter is a long cargo install)
prev=
for a in "$@"; do
  [ "$a" = --smoke ] && smoke=true
  only=
  [ "$prev" = --only ] && only=$a
  case "$a" in --only=*) only=${a#--only=} ;; esac
  if [ -n "$only" ] && [[ ",$only," != *,6,* ]]; then migrations=false; fi
  prev=$a
done
if $migrations; then
  python3 -c "import sys; sys.path.insert(0, 'bench'); import migrations; migrations.install(smoke=$([ $smoke = true ] && echo True || echo False))"
fi

cargo build --release --locked
exec python3 bench/bench.py "$@"
