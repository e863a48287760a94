#!/usr/bin/env bash
# Trial install on one machine: SQLite under var/, Redis on 127.0.0.1,
# one Celery worker with embedded beat, daphne on http://127.0.0.1:8000/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

export KUBEPROBE_DEBUG=${KUBEPROBE_DEBUG:-1}
export KUBEPROBE_LOCAL_EXECUTOR_ENABLED=${KUBEPROBE_LOCAL_EXECUTOR_ENABLED:-1}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PORT=${PORT:-8000}
mkdir -p var/log

redis_host_port=${REDIS_URL#redis://}; redis_host_port=${redis_host_port%%/*}; redis_host_port=${redis_host_port##*@}
if ! "$PY" -c "import redis,sys; redis.Redis.from_url('$REDIS_URL', socket_connect_timeout=2).ping()" 2>/dev/null; then
  if command -v redis-server >/dev/null && [[ $redis_host_port == 127.0.0.1:* || $redis_host_port == localhost:* ]]; then
    echo "Starting a local Redis on ${redis_host_port} ..."
    redis-server --daemonize yes --bind 127.0.0.1 --port "${redis_host_port##*:}" --save "" --appendonly no \
      --logfile "$PWD/var/log/redis.log"
  else
    echo "Redis is not reachable at $REDIS_URL. Install redis-server or set REDIS_URL." >&2
    exit 1
  fi
fi

"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py bootstrap

"$VENV/bin/celery" -A kubeprobe_site worker -B --loglevel INFO --concurrency 2 \
  >var/log/celery.log 2>&1 &
CELERY_PID=$!
trap 'kill $CELERY_PID 2>/dev/null || true' EXIT INT TERM

echo "KubeProbe admin: http://127.0.0.1:${PORT}/admin/   API: http://127.0.0.1:${PORT}/api/v1/   (Ctrl-C stops)"
"$VENV/bin/daphne" -b 127.0.0.1 -p "$PORT" kubeprobe_site.asgi:application
