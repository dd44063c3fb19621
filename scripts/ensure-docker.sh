#!/usr/bin/env bash
# ensure-docker.sh: make a Docker Engine answer, or say exactly what to install.
#
# Used by `make up`, `make test` and .ci/run so that every entry point brings up
# the engine the same way:
#   1. `docker info` answers            -> nothing to do.
#   2. dockerd is installed             -> start it in the background, wait.
#   3. root on Debian/Ubuntu, no dockerd -> apt-get install docker.io, start, wait.
#   4. otherwise                        -> one clear message, exit 1.
# It never prunes or touches anything already in the engine.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

wait_for_engine() {
  local deadline=$((SECONDS + ${DOCKER_WAIT_SECONDS:-90}))
  until engine_answers; do
    if ((SECONDS >= deadline)); then
      log "dockerd did not answer within ${DOCKER_WAIT_SECONDS:-90}s; its log is ${DOCKERD_LOG}:"
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

DOCKERD_LOG=${DOCKERD_LOG:-/tmp/lunorad-dockerd.log}

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi

# A DOCKER_HOST pointing elsewhere is the user's engine: do not start a local one behind their back.
if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != unix:///var/run/docker.sock ]]; then
  log "DOCKER_HOST=${DOCKER_HOST} does not answer 'docker info'. Start that engine, or unset DOCKER_HOST to use a local one."
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "no dockerd found; installing Debian's docker.io (apt-get update && apt-get install -y docker.io)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq docker.io >&2
  else
    log "no Docker Engine found. Install Docker Engine (Debian/Ubuntu: 'sudo apt-get install docker.io';"
    log "elsewhere: https://docs.docker.com/engine/install/), start it, and run this command again."
    exit 1
  fi
fi

if [[ $(id -u) -ne 0 ]]; then
  log "dockerd is installed but not answering, and starting it needs root."
  log "Start it ('sudo systemctl start docker' or 'sudo dockerd &') and make sure your user can reach /var/run/docker.sock."
  exit 1
fi

# containerd ships separately on Debian; dockerd starts its own when it finds the binary.
log "starting dockerd in the background (log: ${DOCKERD_LOG})"
nohup dockerd >"$DOCKERD_LOG" 2>&1 &
wait_for_engine
log "Docker Engine is up: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"
