#!/usr/bin/env bash
# `make cluster-test`: the demo on a real deployment on 127.0.0.1 (tests/cluster, deploy/localcluster.py).
# Installs what is missing first: the Debian servers (PostgreSQL, RabbitMQ, Redis) and the [cluster]
# extra (dagster-postgres, dagster-celery, celery, redis, moto's S3 server, s3fs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
need=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "cluster-test: installing ${need[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # policy-rc.d 101: the packages must not start their system services; the test starts its own
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
"$PY" -c "import dagster_celery, dagster_postgres, moto, s3fs, redis" 2>/dev/null \
  || "$PY" -m pip install -q -e '.[dev,cluster]'
EMOFORGE_CLUSTER_TEST=1 "$PY" -m pytest -q -p no:cacheprovider tests/cluster "$@"
