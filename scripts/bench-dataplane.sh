#!/usr/bin/env bash
# Data-plane benchmark: wrk against a fixed-200 nginx on loopback, directly and through our
# queue-proxy (CC=0 and CC=10), activator + queue-proxy and gateway + queue-proxy (the last two
# only when `knative activator` / `knative gateway` are implemented).
#
#   scripts/bench-dataplane.sh                 # builds nothing; uses target/release/knative
#   DURATION=10s REPS=3 CONNS="1 16" scripts/bench-dataplane.sh
#
# Every case runs `wrk -t1 -d$DURATION --latency` at each connection count; cases are
# interleaved (direct, qp-cc0, qp-cc10, ... then again) and repeated $REPS times; the table
# shows medians. RSS is the proxy's peak VmRSS sampled while wrk drives it (VmRSS counts the
# pages of the shared, read-only executable it touched; "anon" is its private memory).
#
# BODY=65536 answers with a body of that many bytes (a static file) instead of the 12-byte
# "hello world", to measure how the proxies carry larger responses.
#
# The queue-proxies run as the lean binary `knative-queue-proxy` (what a Revision Pod runs);
# QP_CMD="$ROOT/target/release/knative queue-proxy" measures the multi-purpose binary instead.
#
# Needs: wrk and nginx (Debian packages; installed with apt-get when missing), a release build:
#   cargo build --release -p knative-platform -p knative-queue-proxy
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KNATIVE_BIN:-$ROOT/target/release/knative}
# The queue-proxy command (split on spaces): the lean binary unless told otherwise.
QP_CMD=${QP_CMD:-$ROOT/target/release/knative-queue-proxy}
DURATION=${DURATION:-10s}
REPS=${REPS:-3}
CONNS=${CONNS:-"1 16"}
# Worker threads of each of our proxies (1 = a current-thread runtime).
QP_THREADS=${QP_THREADS:-1}
BASE_PORT=${BASE_PORT:-21000}
BODY=${BODY:-}

need() {
    command -v "$1" >/dev/null 2>&1 && return
    [ -x "/usr/sbin/$1" ] && return
    echo "installing $2 ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >&2
}
need wrk wrk
need nginx nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$BIN" ] || { echo "no $BIN: run cargo build --release -p knative-platform" >&2; exit 1; }
qp_exe=${QP_CMD%% *}; [ -x "$qp_exe" ] || { echo "no $qp_exe: run cargo build --release -p knative-queue-proxy" >&2; exit 1; }

WORK=$(mktemp -d /tmp/bench-dataplane.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

UPSTREAM=$((BASE_PORT + 80))
QP0=$((BASE_PORT + 12)) QP0_ADMIN=$((BASE_PORT + 22)) QP0_STATS=$((BASE_PORT + 90)) QP0_USER=$((BASE_PORT + 91))
QP10=$((BASE_PORT + 112)) QP10_ADMIN=$((BASE_PORT + 122)) QP10_STATS=$((BASE_PORT + 190)) QP10_USER=$((BASE_PORT + 191))
ACTIVATOR=$((BASE_PORT + 212))
GATEWAY=$((BASE_PORT + 312))

# --- the user container: nginx answering 200 with a fixed body -----------------------------
if [ -n "$BODY" ]; then
    mkdir -p "$WORK/www"
    head -c "$BODY" /dev/zero | tr '\0' 'x' >"$WORK/www/index.html"
    # nginx's worker runs as nobody: it must get to the file through mktemp's 0700 directory.
    chmod o+rx "$WORK" "$WORK/www" && chmod o+r "$WORK/www/index.html"
    ANSWER="root $WORK/www;"
else
    ANSWER='return 200 "hello world\n";'
fi
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UPSTREAM;
        location / { $ANSWER }
    }
}
EOF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)

wait_port() {
    local port=$1 name=$2 pid=${3:-}
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited before listening on $port" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$name does not listen on $port" >&2
    return 1
}
wait_port "$UPSTREAM" nginx

# --- our queue-proxies ------------------------------------------------------------------------
start_qp() { # cc port admin stats user
    SERVING_NAMESPACE=default SERVING_CONFIGURATION=hello SERVING_REVISION=hello-00001 \
    SERVING_POD="bench-qp-cc$1" USER_PORT=$UPSTREAM CONTAINER_CONCURRENCY=$1 \
    QUEUE_SERVING_PORT=$2 RUST_LOG=warn \
        $QP_CMD --listen-address 127.0.0.1 --admin-port "$3" --metrics-port "$4" \
        --user-metrics-port "$5" --drain-quiet-period-seconds 0 --worker-threads "$QP_THREADS" \
        >"$WORK/qp-cc$1.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}
start_qp 0 "$QP0" "$QP0_ADMIN" "$QP0_STATS" "$QP0_USER"
QP0_PID=$STARTED
start_qp 10 "$QP10" "$QP10_ADMIN" "$QP10_STATS" "$QP10_USER"
QP10_PID=$STARTED
wait_port "$QP0" "queue-proxy CC=0" "$QP0_PID"
wait_port "$QP10" "queue-proxy CC=10" "$QP10_PID"

# name|url|pid whose RSS to sample|request headers, ";"-separated
CASES=(
    "direct|http://127.0.0.1:$UPSTREAM/||"
    "queue-proxy-cc0|http://127.0.0.1:$QP0/|$QP0_PID|"
    "queue-proxy-cc10|http://127.0.0.1:$QP10/|$QP10_PID|"
)

# --- the activator in front of queue-proxy CC=0, when implemented -----------------------------
threads_flag() { # --worker-threads N when the subcommand has it
    if "$BIN" "$1" --help 2>/dev/null | grep -q -- '--worker-threads'; then
        echo "--worker-threads=$QP_THREADS"
    fi
}
if "$BIN" activator --help 2>/dev/null | grep -q -- '--revision'; then
    # shellcheck disable=SC2046
    RUST_LOG=warn "$BIN" activator --listen "127.0.0.1:$ACTIVATOR" $(threads_flag activator) \
        --revision "default/hello-00001@0=127.0.0.1:$QP0" >"$WORK/activator.log" 2>&1 &
    ACT_PID=$!
    PIDS+=($ACT_PID)
    if wait_port "$ACTIVATOR" activator "$ACT_PID"; then
        CASES+=("activator+queue-proxy|http://127.0.0.1:$ACTIVATOR/|$ACT_PID|Knative-Serving-Namespace: default;Knative-Serving-Revision: hello-00001")
    fi
else
    echo "knative activator is not implemented: skipping its case" >&2
fi

# --- the gateway in front of queue-proxy CC=0, when implemented -------------------------------
if "$BIN" gateway --help 2>/dev/null | grep -q -- '--ingress'; then
    cat >"$WORK/ingress.yaml" <<EOF
apiVersion: networking.internal.knative.dev/v1alpha1
kind: Ingress
metadata:
  name: hello
  namespace: default
spec:
  rules:
    - hosts: [hello.default.example.com]
      visibility: ExternalIP
      http:
        paths:
          - splits:
              - serviceName: hello-00001
                serviceNamespace: default
                servicePort: 80
                percent: 100
EOF
    # shellcheck disable=SC2046
    RUST_LOG=warn "$BIN" gateway --listen "127.0.0.1:$GATEWAY" $(threads_flag gateway) \
        --ingress "$WORK/ingress.yaml" \
        --endpoints "default/hello-00001:80=127.0.0.1:$QP0" >"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=($GW_PID)
    if wait_port "$GATEWAY" gateway "$GW_PID"; then
        CASES+=("gateway+queue-proxy|http://127.0.0.1:$GATEWAY/|$GW_PID|Host: hello.default.example.com")
    fi
else
    echo "knative gateway is not implemented (no --ingress flag): skipping its case" >&2
fi

header_args() { # "A: 1;B: 2" → -H "A: 1" -H "B: 2" in the array HEADER_ARGS
    HEADER_ARGS=()
    local h
    IFS=';' read -r -a hs <<<"$1"
    for h in "${hs[@]}"; do [ -n "$h" ] && HEADER_ARGS+=(-H "$h"); done
    return 0
}

# Every case must answer 200 before anything is measured.
for case in "${CASES[@]}"; do
    IFS='|' read -r name url _pid headers <<<"$case"
    header_args "$headers"
    code=$(curl -s -o /dev/null -w '%{http_code}' "${HEADER_ARGS[@]}" "$url" || true)
    if [ "$code" != 200 ]; then
        echo "$name: $url answers $code, not 200 (see $WORK/*.log)" >&2
        exit 1
    fi
done

# wrk prints latencies as 52.00us / 1.20ms / 1.01s: milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
        else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
        else print v }'
}

# A FIFO nobody writes to: `read -t` on it sleeps without starting a process.
mkfifo "$WORK/nap"
exec {NAP}<>"$WORK/nap"

peak_rss_kb() { # pid seconds → "peak VmRSS, peak RssAnon" in kB, sampled every 0.2 s
    # Bash builtins only: a sampler that forked awk, date and sleep five times a second took
    # CPU from the proxies it measured (and never from the direct case, which has no sampler).
    local pid=$1 end=$((SECONDS + $2)) peak=0 peak_anon=0 key value _
    while [ "$SECONDS" -lt "$end" ]; do
        while read -r key value _; do
            case $key in
            VmRSS:) [ "$value" -gt "$peak" ] && peak=$value ;;
            RssAnon:) [ "$value" -gt "$peak_anon" ] && peak_anon=$value ;;
            esac
        done <"/proc/$pid/status" 2>/dev/null
        read -r -t 0.2 -u "$NAP" _ || true
    done
    echo "$peak $peak_anon"
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
secs=${DURATION%s}
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "runs: wrk -t1 -d$DURATION --latency, connections: $CONNS, repetitions: $REPS, queue-proxy threads: $QP_THREADS, body: ${BODY:-12} bytes" >&2
for rep in $(seq 1 "$REPS"); do
    for c in $CONNS; do
        for case in "${CASES[@]}"; do
            IFS='|' read -r name url pid headers <<<"$case"
            header_args "$headers"
            rss_file="$WORK/rss"
            echo "0 0" >"$rss_file"
            if [ -n "$pid" ]; then
                (peak_rss_kb "$pid" "$secs" >"$rss_file") &
                sampler=$!
            fi
            out=$(wrk -t1 -c"$c" -d"$DURATION" --latency "${HEADER_ARGS[@]}" "$url")
            [ -n "$pid" ] && wait "$sampler"
            rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
            p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
            errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
            read -r rss anon <"$rss_file"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$rep" "$rps" "$p50" "$p99" "$rss" "$errors" "$anon" >>"$RESULTS"
            printf 'rep %s c%-3s %-24s %10s req/s  p50 %7.3f ms  p99 %7.3f ms  rss %6s kB (anon %s)  errors %s\n' \
                "$rep" "$c" "$name" "$rps" "$p50" "$p99" "$rss" "$anon" "$errors" >&2
        done
    done
done

# --- medians ----------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
printf '%-24s %4s %12s %10s %10s %12s %14s %8s %8s %7s\n' case conns "req/s" "p50 ms" "p99 ms" "% of direct" "added p50 ms" "RSS MB" "anon MB" errors
for c in $CONNS; do
    direct_rps=$(awk -F'\t' -v c="$c" '$1 == "direct" && $2 == c {print $4}' "$RESULTS" | median)
    direct_p50=$(awk -F'\t' -v c="$c" '$1 == "direct" && $2 == c {print $5}' "$RESULTS" | median)
    for case in "${CASES[@]}"; do
        name=${case%%|*}
        col() { awk -F'\t' -v n="$name" -v c="$c" -v k="$1" '$1 == n && $2 == c {print $k}' "$RESULTS"; }
        rps=$(col 4 | median)
        p50=$(col 5 | median)
        p99=$(col 6 | median)
        rss=$(col 7 | sort -g | tail -1)
        anon=$(col 9 | sort -g | tail -1)
        errors=$(col 8 | awk '{n += $1} END {print n + 0}')
        awk -v n="$name" -v c="$c" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v drps="$direct_rps" \
            -v dp50="$direct_p50" -v rss="$rss" -v anon="$anon" -v e="$errors" 'BEGIN {
            printf "%-24s %4s %12.0f %10.3f %10.3f %11.1f%% %14.3f %8s %8s %7d\n",
                n, c, rps, p50, p99, 100 * rps / drps, p50 - dp50,
                (rss > 0 ? sprintf("%.1f", rss / 1024) : "-"),
                (anon > 0 ? sprintf("%.1f", anon / 1024) : "-"), e }'
    done
done
echo
echo "raw results: $RESULTS" >&2
