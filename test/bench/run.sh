#!/usr/bin/env bash
# run.sh <builddir>: the benchmark of issue 8. Runs the same scenarios, with the same load
# generator and the same Redis, against roomcast (<builddir>/roomcast) and against the Node
# reference (test/bench/node-ref: Socket.IO 4.8 + @socket.io/redis-adapter), then prints a table
# (figure | roomcast | node | ratio) and writes it into docs/performance.md.
#
# Scenarios (sizes from the environment; BENCH_QUICK=1 for a smoke run with small N):
#   handshake  HS_N connections opened as fast as the server takes them: WebSocket upgrade,
#              Engine.IO open, Socket.IO CONNECT with an HS256 JWT.
#   idle       RSS of a fresh server before and after IDLE1 and IDLE2 connections (each joined
#              to its own user room, one of ROOMS rooms and the room "all").
#   fanout     FAN_MSGS messages published at once to "all" (IDLE1 members).
#   rooms      ROOMS_MSGS messages, round robin over ROOMS rooms of IDLE1/ROOMS members.
#   latency    LAT_RATE messages/s for LAT_SECS s, round robin over the same rooms.
#   void       VOID_MSGS messages at VOID_RATE/s to a room no socket is in: the server's CPU
#              over that of an idle window of the same length, per message.
#   room10k_rate  R10K_RATE messages/s for R10K_SECS s to "all" (IDLE1 members, one node): the
#              latency of one big room at a fixed rate (2 msg/s x 10,000 = 20,000 deliveries/s).
#   cluster2/3 CL_N connections spread over 2 and 3 nodes, all in "all"; CL_MSGS messages.
#   xlatency   XL_ROOMS rooms of IDLE1/ROOMS members spread over 2 nodes (XL_ROOMS is odd, so the
#              members of every room alternate between the nodes), published round robin for
#              XL_SECS s at a fixed rate: each fraction of XL_FRACTIONS of the rate the same server
#              reached in its "rooms" phase (its deliveries/s / members per room, in messages/s),
#              lowest first, on the same nodes and connections. The point at 0.5 ("half the
#              maximum rate") is recorded as "xlatency", the others as "xcurve_<fraction>". With
#              both servers in BENCH_TARGETS, "xlatency_noderate" runs roomcast once more at
#              half of Node's rate.
#   formats    (roomcast, Redis mode) one node started with ROOMCAST_SOCKETIO_PREFIX=socket.io and
#              IDLE1 connections joined as for "idle"; FMT_ROUNDS rounds of the fanout and rooms
#              phases, each published once in roomcast's JSON envelope and once in the
#              @socket.io/redis-emitter format, alternately, on the same node and connections:
#              server CPU per delivery of each format (docs/redis.md, "Socket.IO's Redis formats").
#   shards     (target "shards": roomcast only) one Redis against a Redis Cluster of three masters:
#              SH_CONNS connections over 2 nodes in SH_ROOMS rooms (members alternating between the
#              nodes), SH_MSGS messages round robin over the rooms as fast as the publisher goes
#              (PUBLISH on one Redis; SPUBLISH to each channel's master on the cluster). Records
#              deliveries/s and the CPU of every Redis process (each master's), side by side.
#   limit      the machine's floor (target "limit", <builddir>/bench/limit): a minimal epoll
#              server, no broker logic, no Redis, IDLE1 connections joined as above. It runs the
#              fanout shape (FAN_MSGS pre-built frames written to all at once: "blast"), then the
#              fixed-rate phases with frames built as they fall due ("pace"): latency,
#              room10k_rate, and rooms of IDLE1/ROOMS at the rates of roomcast's latency curve.
# Each phase records the CPU time of every server process, Redis, the load generator and the
# publisher, so the bottleneck is visible.
#
# Families (BENCH_FAMILIES, default "burst paced"; one of them alone runs only that one):
#   burst      everything above.
#   paced      messages one at a time, so that each socket has one frame to write per message
#              (no burst: the regime of chat, tasks and notifications). For each variant of
#              BENCH_PACED (default "roomcast:writev roomcast:io_uring node limit:epoll
#              limit:io_uring"): P_CONNS connections (IDLE1) in P_ROOMS rooms (ROOMS) and "all",
#              then "paced_one": P_ONE_RATE messages/s (2) to "all" for P_SECS s (8), i.e.
#              20,000 deliveries/s; and "paced_rooms": P_ROOMS_RATE messages/s (1,000) round
#              robin over the rooms of P_CONNS/P_ROOMS members for P_SECS s (10,000
#              deliveries/s, each socket one message a second). roomcast:<path> starts roomcast
#              with ROOMCAST_SEND_PATH=<path>; limit:io_uring starts the limit with --uring.
#              test/bench/paced-report.js writes the table ("Latest paced run").
#   recovery   connection state recovery's cost (docs/recovery.md): roomcast on Redis, one node,
#              P_CONNS connections in P_ROOMS rooms and "all", the two paced phases ("one room":
#              P_ONE_RATE msg/s to "all"; "1,000 rooms": P_ROOMS_RATE msg/s round robin), once
#              with recovery off and once on (a config with "recovery" on "/"), every message
#              published with POST /api/publish both times (the path that keeps events). Records
#              the server's and Redis's CPU per delivery; test/bench/recovery-report.js writes
#              the table ("Latest recovery run").
#
# Publishing: the Node reference gets @socket.io/redis-emitter messages (msgpack on
# socket.io#/#<room>#); roomcast gets its JSON envelope on roomcast:room:/:<room>. If a roomcast
# node started with ROOMCAST_REDIS_URL does not deliver a probe message, roomcast runs in its
# embedded mode and the publisher POSTs /api/publish (the cluster scenarios are then skipped).
#
# Sizes: HS_N IDLE1 IDLE2 FAN_MSGS ROOMS ROOMS_MSGS LAT_RATE LAT_SECS VOID_MSGS VOID_RATE CL_N
# CL_MSGS R10K_RATE R10K_SECS XL_ROOMS XL_SECS XL_FRACTIONS SH_CONNS SH_ROOMS SH_MSGS.
# Environment: BENCH_TARGETS ("roomcast node limit shards"), BENCH_KEEP=1 keeps the work directory,
# BENCH_DOC (docs/performance.md; "" = do not write), BENCH_PROCS (2) load generator processes,
# BENCH_ROOMCAST_CONFIG (a config file passed to every roomcast node with --config),
# BENCH_FAMILIES, BENCH_PACED and BENCH_PROFILE (the paced family: see below), BENCH_ONLY=formats
# (roomcast's formats scenario alone, e.g. BENCH_TARGETS=roomcast BENCH_DOC= for a quick check),
# FMT_ROUNDS (3).
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 <builddir>" >&2; exit 2; }
B=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LG=$B/bench/loadgen
PUB=$B/bench/publisher
RC=$B/roomcast
LIM=$B/bench/limit
for t in "$LG" "$PUB"; do
  [ -x "$t" ] || { echo "run.sh: $t missing: make -C test/bench O=$B/bench" >&2; exit 2; }
done

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  d_hs=500 d_idle1=1000 d_idle2=1500 d_fan=20 d_rooms=100 d_rmsgs=2000 d_lrate=200 d_lsecs=3
  d_vmsgs=2000 d_vrate=2000 d_cln=1000 d_clmsgs=20 d_r10krate=2 d_r10ksecs=3 d_xlsecs=3
else
  d_hs=5000 d_idle1=10000 d_idle2=19000 d_fan=100 d_rooms=1000 d_rmsgs=20000 d_lrate=1000
  d_lsecs=10 d_vmsgs=40000 d_vrate=10000 d_cln=10000 d_clmsgs=50 d_r10krate=2 d_r10ksecs=8
  d_xlsecs=8
fi
HS_N=${HS_N:-$d_hs} IDLE1=${IDLE1:-$d_idle1} IDLE2=${IDLE2:-$d_idle2} FAN_MSGS=${FAN_MSGS:-$d_fan}
ROOMS=${ROOMS:-$d_rooms} ROOMS_MSGS=${ROOMS_MSGS:-$d_rmsgs} LAT_RATE=${LAT_RATE:-$d_lrate}
LAT_SECS=${LAT_SECS:-$d_lsecs} VOID_MSGS=${VOID_MSGS:-$d_vmsgs} VOID_RATE=${VOID_RATE:-$d_vrate}
CL_N=${CL_N:-$d_cln} CL_MSGS=${CL_MSGS:-$d_clmsgs}
R10K_RATE=${R10K_RATE:-$d_r10krate} R10K_SECS=${R10K_SECS:-$d_r10ksecs} XL_SECS=${XL_SECS:-$d_xlsecs}
# xlatency: an odd number of rooms, so that connection i (port i % 2, room i % XL_ROOMS) puts
# half of every room's members on each node
XL_ROOMS=${XL_ROOMS:-$(( ROOMS % 2 ? ROOMS : ROOMS - 1 ))}
# the latency curve across 2 nodes: fractions of each server's own "rooms" rate (0.5: the
# criterion's "half the maximum rate", recorded as "xlatency")
XL_FRACTIONS=${XL_FRACTIONS:-0.05 0.1 0.2 0.35 0.5}
FMT_ROUNDS=${FMT_ROUNDS:-3}
SH_CONNS=${SH_CONNS:-$IDLE1} SH_ROOMS=${SH_ROOMS:-$XL_ROOMS} SH_MSGS=${SH_MSGS:-$ROOMS_MSGS}
PROCS=${BENCH_PROCS:-2}
FAMILIES=${BENCH_FAMILIES:-burst paced recovery}
[ "${BENCH_ONLY:-}" = formats ] && FAMILIES=burst
PACED=${BENCH_PACED:-roomcast:writev roomcast:io_uring node limit:epoll limit:io_uring}
P_CONNS=${P_CONNS:-$IDLE1} P_ROOMS=${P_ROOMS:-$ROOMS} P_SECS=${P_SECS:-$R10K_SECS}
P_ONE_RATE=${P_ONE_RATE:-$R10K_RATE} P_ROOMS_RATE=${P_ROOMS_RATE:-$LAT_RATE}
LIM_ARGS=()
TARGETS=${BENCH_TARGETS:-roomcast node limit shards}
SRC_IPS=127.0.0.1-127.0.0.8
SECRET=bench-secret-$$
API_KEY=bench-api-key-$$
DOC=${BENCH_DOC-$ROOT/docs/performance.md}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
W=$(mktemp -d /tmp/roomcast-bench.XXXXXX)
RES=$W/results.jsonl
: > "$RES"
PIDS=()
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- process measurements ------------------------------------------------------------------
TCK=$(getconf CLK_TCK)
cpu_of() {   # CPU seconds (user + system) of a pid, 0 if gone
  local s
  s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  awk -v t="$TCK" '{printf "%.3f", ($12 + $13) / t}' <<<"$s"
}
rss_of() {   # resident set in KiB
  awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}
cpus_of() {  # "a,b,c" CPU seconds of several pids
  local out="" p
  for p in "$@"; do out+="${out:+,}$(cpu_of "$p")"; done
  echo "$out"
}
now() { date +%s.%N; }
busy_all() { # "user+nice+system irq+softirq steal" CPU seconds of the whole machine (/proc/stat)
  awk -v t="$TCK" '/^cpu /{printf "%.3f %.3f %.3f", ($2 + $3 + $4) / t, ($7 + $8) / t, $9 / t; exit}' /proc/stat
}
sub3() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }
machine_json() { # machine_json "BUSY0" "BUSY1": the machine's CPU over a phase, as JSON fields
  local a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  printf '"machine_cpu":%s,"softirq_cpu":%s,"steal_cpu":%s' "$(sub3 "${a[0]}" "${b[0]}")" \
    "$(sub3 "${a[1]}" "${b[1]}")" "$(sub3 "${a[2]}" "${b[2]}")"
}

free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# ---- Redis -----------------------------------------------------------------------------------
RPORT=$(free_port 16379)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --logfile "$W/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
log "redis on $RPORT (pid $REDIS_PID), work directory $W"

# ---- Node reference dependencies ---------------------------------------------------------------
if [[ " $TARGETS " == *" node "* ]]; then
  (
    cd "$HERE/node-ref"
    stamp=node_modules/.bench-lock
    if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
      log "npm ci in test/bench/node-ref"
      npm ci --no-audit --no-fund --loglevel=error >&2
      cp package-lock.json "$stamp"
    fi
  )
  # the publisher's hand-written msgpack must stay byte-identical to the real emitter's
  node "$HERE/node-ref/check-emitter.js" "$RPORT" "$PUB" >"$W/check-emitter.out" 2>&1 ||
    log "WARNING: publisher --format emitter differs from @socket.io/redis-emitter: $(tail -1 "$W/check-emitter.out")"
fi

# ---- servers ---------------------------------------------------------------------------------
# SRV_PIDS / SRV_PORTS: the servers of the current scenario. MODE: how roomcast publishes.
SRV_PIDS=()
SRV_PORTS=()
MODE=redis
LIMFD=''    # write end of the limit server's command fifo

probe() {    # probe PORT: 0 when one authenticated connection succeeds
  "$LG" --port "$1" --conns 1 --secret "$SECRET" --timeout 2000 2>/dev/null |
    grep -q '"connected":1,'
}

start_one() {   # start_one TARGET INDEX: starts a server and appends it to SRV_PIDS/SRV_PORTS
  local target=$1 i=$2 port pid
  local cfg=()
  [ -n "${BENCH_ROOMCAST_CONFIG:-}" ] && cfg=(--config "$BENCH_ROOMCAST_CONFIG")
  port=$(free_port $((23000 + i * 10)))
  if [ "$target" = node ]; then
    (cd "$HERE/node-ref" && PORT=$port REDIS_URL="redis://127.0.0.1:$RPORT" JWT_SECRET=$SECRET \
      exec node server.js) >"$W/node-$i.log" 2>&1 &
  elif [ "$target" = limit ]; then
    # commands ("blast N") on a fifo held open by this shell; one JSON line per blast on stdout
    rm -f "$W/limit-$i.in"
    mkfifo "$W/limit-$i.in"
    "$LIM" --port "$port" "${LIM_ARGS[@]}" <"$W/limit-$i.in" >"$W/limit-$i.out" 2>"$W/limit-$i.log" &
    exec {LIMFD}>"$W/limit-$i.in"
  else
    if [ "$MODE" = cluster ]; then
      ROOMCAST_JWT_SECRET=$SECRET ROOMCAST_REDIS_CLUSTER="$CSEEDS" \
        ROOMCAST_LOG_LEVEL=warn exec "$RC" "${cfg[@]}" --port "$port" --node-id "bench-$i" \
        >"$W/roomcast-$i.log" 2>&1 &
    elif [ "$MODE" = redis ] || [ "$MODE" = redisapi ]; then
      ROOMCAST_JWT_SECRET=$SECRET ROOMCAST_REDIS_URL="redis://127.0.0.1:$RPORT" ROOMCAST_API_KEY=$API_KEY \
        ROOMCAST_SOCKETIO_PREFIX=${RC_SIO_PREFIX:-} \
        ROOMCAST_LOG_LEVEL=warn exec "$RC" "${cfg[@]}" --port "$port" --node-id "bench-$i" \
        >"$W/roomcast-$i.log" 2>&1 &
    else
      ROOMCAST_JWT_SECRET=$SECRET ROOMCAST_API_KEY=$API_KEY ROOMCAST_LOG_LEVEL=warn \
        exec "$RC" "${cfg[@]}" --port "$port" --node-id "bench-$i" >"$W/roomcast-$i.log" 2>&1 &
    fi
  fi
  pid=$!
  PIDS+=("$pid")
  local ok=0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    if probe "$port"; then ok=1; break; fi
    sleep 0.2
  done
  if [ $ok = 0 ]; then
    log "$target node $i did not come up on $port; last log lines:"
    tail -5 "$W/$target-$i.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    return 1
  fi
  SRV_PIDS+=("$pid")
  SRV_PORTS+=("$port")
}

stop_servers() {
  local p
  for p in "${SRV_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SRV_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  SRV_PIDS=()
  SRV_PORTS=()
  if [ -n "$LIMFD" ]; then exec {LIMFD}>&-; LIMFD=''; fi
}

start_servers() {   # start_servers TARGET COUNT
  local i
  SRV_PIDS=()
  SRV_PORTS=()
  for i in $(seq 1 "$2"); do start_one "$1" "$i" || { stop_servers; return 1; }; done
  # warm-up: the first handshakes of a fresh Node process run cold code
  "$LG" --port "$(IFS=,; echo "${SRV_PORTS[*]}")" --conns 200 --rooms 10 --join-also warm \
    --secret "$SECRET" --concurrency 50 >/dev/null 2>&1 || true
  sleep 1
}

publish() {     # publish TARGET publisher-args...: prints the publisher's JSON line
  local target=$1
  shift
  if [ "$target" = node ]; then
    "$PUB" --redis "127.0.0.1:$RPORT" --format emitter "$@"
  elif [ "$target" = limit ]; then
    limit_blast "$@"
  elif [ "$MODE" = cluster ]; then
    "$PUB" --redis "${CSEEDS%%,*}" --cluster --format roomcast "$@"
  elif [ "$MODE" = redis ]; then
    # PUBFMT=emitter: the @socket.io/redis-emitter format (scen_formats), else the JSON envelope
    "$PUB" --redis "127.0.0.1:$RPORT" --format "$([ "${PUBFMT:-}" = emitter ] && echo emitter || echo roomcast)" "$@"
  elif [ "$MODE" = redisapi ]; then
    "$PUB" --format api --api "127.0.0.1:${SRV_PORTS[0]}" --api-key "$API_KEY" "$@"
  else
    "$PUB" --format api --api "127.0.0.1:${SRV_PORTS[0]}" --api-key "$API_KEY" "$@"
  fi
}

# limit_blast publisher-args...: the limit server's side of a publish. Without --rate: "blast
# COUNT" (every member gets COUNT pre-built frames at once). With --rate: "pace RATE COUNT ROOMS"
# (message i at start + i/RATE to room i % ROOMS, as the publisher would send it; --room: one
# room of everyone). Prints its JSON line once the last byte is written.
limit_blast() {
  local count=1 rate='' rooms=1 dur='' n t=2400
  while [ $# -gt 0 ]; do
    case $1 in
      --count) count=$2 ;;
      --rate) rate=$2 ;;
      --rooms) rooms=$2 ;;
      --duration) dur=$2 ;;
    esac
    shift
  done
  [ -n "$dur" ] && [ -n "$rate" ] && count=$(awk -v r="$rate" -v d="$dur" 'BEGIN{printf "%d", r * d}')
  n=$(( $(wc -l <"$W/limit-1.out") + 1 ))
  if [ -n "$rate" ]; then echo "pace $rate $count $rooms" >&"$LIMFD"; else echo "blast $count" >&"$LIMFD"; fi
  while [ "$(wc -l <"$W/limit-1.out")" -lt "$n" ]; do
    t=$((t - 1))
    [ $t -gt 0 ] || { echo '{"error":"limit: no reply"}'; return 1; }
    sleep 0.1
  done
  sed -n "${n}p" "$W/limit-1.out"
}

# Decides MODE for roomcast: Redis backplane if a probe message published on Redis arrives.
roomcast_mode() {
  [ -x "$RC" ] || { log "no $RC: roomcast skipped"; return 1; }
  local out
  for MODE in redis api; do
    start_one roomcast 9 || continue
    "$LG" --port "${SRV_PORTS[0]}" --conns 1 --join-also probe --secret "$SECRET" \
      --duration 3 >"$W/probe.out" 2>/dev/null &
    local lgp=$!
    sleep 1
    publish roomcast --room probe --count 3 >/dev/null 2>&1 || true
    wait "$lgp" || true
    stop_servers
    if grep -q '"phase":"listen".*"deliveries":3,' "$W/probe.out"; then
      log "roomcast publishes through: $MODE"
      return 0
    fi
    log "roomcast: no delivery with MODE=$MODE"
  done
  return 1
}

# ---- load generator under control ------------------------------------------------------------
# lg_start SLOT args...: a loadgen reading commands on fd LGFD[SLOT]; waits for its connect line
# and leaves it in LG_LINE. (Not to be called in $(...): the fd and pid must stay in this shell.)
declare -A LGFD LGPID
LG_LINE=null
lg_start() {
  local slot=$1 fd
  shift
  rm -f "$W/lg-$slot.in"
  mkfifo "$W/lg-$slot.in"
  "$LG" --control --secret "$SECRET" --procs "$PROCS" --src-ips "$SRC_IPS" "$@" \
    <"$W/lg-$slot.in" >"$W/lg-$slot.out" 2>"$W/lg-$slot.err" &
  LGPID[$slot]=$!
  PIDS+=("${LGPID[$slot]}")
  exec {fd}>"$W/lg-$slot.in"
  LGFD[$slot]=$fd
  LG_LINE=$(lg_wait "$slot" 1 600) || { LG_LINE=null; return 1; }
}
lg_wait() {     # lg_wait SLOT LINES TIMEOUT_S: prints line LINES of the slot's output
  local slot=$1 n=$2 t=$(( $3 * 10 ))
  while [ "$(wc -l <"$W/lg-$slot.out")" -lt "$n" ]; do
    kill -0 "${LGPID[$slot]}" 2>/dev/null || { log "loadgen $slot died"; cat "$W/lg-$slot.err" >&2; return 1; }
    t=$((t - 1))
    [ $t -gt 0 ] || { log "loadgen $slot: timeout"; return 1; }
    sleep 0.1
  done
  sed -n "${n}p" "$W/lg-$slot.out"
}
lg_cmd() { echo "$2" >&"${LGFD[$1]}"; }
lg_stop() {
  local slot=$1 fd=${LGFD[$1]}
  lg_cmd "$slot" quit || true
  exec {fd}>&-
  wait "${LGPID[$slot]}" 2>/dev/null || true
}

record() {      # record TARGET SCENARIO JSON-FIELDS...
  local target=$1 scen=$2
  shift 2
  local IFS=,
  echo "{\"target\":\"$target\",\"scenario\":\"$scen\",$*}" >>"$RES"
}

# measure_phase TARGET SLOT NAME EXPECT QUIET_MS TIMEOUT_MS publisher-args...
measure_phase() {
  local target=$1 slot=$2 name=$3 expect=$4 quiet=$5 tmo=$6
  shift 6
  local n c0 r0 t0 m0 pubjson lgjson c1 r1 t1 m1 pkey=publisher
  [ "$target" = limit ] && pkey=limit   # its line is the server's own report, not a publisher's
  n=$(( $(wc -l <"$W/lg-$slot.out") + 1 ))
  c0=$(cpus_of "${SRV_PIDS[@]}") r0=$(cpu_of "$REDIS_PID") t0=$(now) m0=$(busy_all)
  [ ${#SHARD_PIDS[@]} -gt 0 ] && read -r -a SHARD_CPU0 <<<"$(cpus_of "${SHARD_PIDS[@]}" | tr , ' ')"
  lg_cmd "$slot" "measure $name $expect $quiet $tmo"
  pubjson=$(publish "$target" "$@") || pubjson='{"error":"publisher failed"}'
  lgjson=$(lg_wait "$slot" "$n" $(( tmo / 1000 + 30 ))) || lgjson='{"error":"loadgen"}'
  c1=$(cpus_of "${SRV_PIDS[@]}") r1=$(cpu_of "$REDIS_PID") t1=$(now) m1=$(busy_all)
  local shards=''
  if [ ${#SHARD_PIDS[@]} -gt 0 ]; then  # each Redis process of the phase (scen_shards)
    local i sc1=() sd=''
    read -r -a sc1 <<<"$(cpus_of "${SHARD_PIDS[@]}" | tr , ' ')"
    for i in "${!SHARD_PIDS[@]}"; do sd+="${sd:+,}$(sub3 "${SHARD_CPU0[$i]}" "${sc1[$i]}")"; done
    shards="\"shard_cpu\":[$sd]"
  fi
  record "$target" "$name" "\"expected\":$expect" "\"loadgen\":$lgjson" "\"$pkey\":$pubjson" ${shards:+"$shards"} \
    "\"server_cpu0\":[$c0]" "\"server_cpu1\":[$c1]" "\"redis_cpu\":$(sub3 "$r0" "$r1")" \
    "$(machine_json "$m0" "$m1")" "\"wall_s\":$(sub3 "$t0" "$t1")" \
    "\"server_rss_kb\":[$(rss_of "${SRV_PIDS[0]}")]"
  log "$target $name: $(grep -o '"deliveries":[0-9]*' <<<"$lgjson") of $expect, $(grep -o '"deliveries_per_s":[0-9.]*' <<<"$lgjson")"
}

# ---- Redis Cluster (scen_shards) ---------------------------------------------------------------
SHARD_PIDS=()
SHARD_CPU0=()
CSEEDS=''
CLUSTER_PIDS=()
cluster_start() {   # three masters joined by redis-cli --cluster create; sets CSEEDS, CLUSTER_PIDS
  local i port bus addrs=()
  mkdir -p "$W/cluster"
  CLUSTER_PIDS=()
  for i in 0 1 2; do
    port=$(free_port $((17100 + i * 7)))
    bus=$(free_port $((27100 + i * 7)))
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bus" \
      --cluster-config-file "$W/cluster/nodes-$port.conf" --save '' --appendonly no \
      --dir "$W/cluster" --daemonize no --logfile "$W/cluster/redis-$port.log" &
    CLUSTER_PIDS+=("$!")
    PIDS+=("$!")
    addrs+=("127.0.0.1:$port")
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$W/cluster/create.log" 2>&1 ||
    { log "redis-cli --cluster create failed"; return 1; }
  for i in "${addrs[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "${i##*:}" cluster info 2>/dev/null | grep -q cluster_state:ok && break
      sleep 0.1
    done
  done
  CSEEDS=$(IFS=,; echo "${addrs[*]}")
  log "redis cluster: $CSEEDS (pids ${CLUSTER_PIDS[*]})"
}
cluster_stop() {
  local p
  for p in "${CLUSTER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  CLUSTER_PIDS=()
}

# shards_phase NAME: 2 roomcast nodes (MODE decides one Redis or the cluster), SH_CONNS
# connections over SH_ROOMS rooms, SH_MSGS messages round robin, every Redis process measured.
shards_phase() {
  local name=$1 per_room=$(( SH_CONNS / SH_ROOMS ))
  start_servers roomcast 2 || return 0
  local ports
  ports=$(IFS=,; echo "${SRV_PORTS[*]}")
  lg_start S --port "$ports" --conns $(( per_room * SH_ROOMS )) --rooms "$SH_ROOMS" --concurrency 64 ||
    { stop_servers; return 0; }
  record roomcast "${name}_connect" "\"nodes\":2" "\"connect\":$LG_LINE"
  sleep 2
  measure_phase roomcast S "$name" $(( SH_MSGS * per_room )) 10000 240000 --rooms "$SH_ROOMS" --count "$SH_MSGS"
  record roomcast "${name}_params" "\"rooms\":$SH_ROOMS" "\"members\":$per_room" "\"nodes\":2" \
    "\"redis_processes\":${#SHARD_PIDS[@]}"
  lg_stop S
  stop_servers
}

scen_shards() {
  [ -x "$RC" ] || { log "no $RC: shards skipped"; return 0; }
  MODE=redis
  SHARD_PIDS=("$REDIS_PID")
  shards_phase shards1
  if cluster_start; then
    MODE=cluster
    SHARD_PIDS=("${CLUSTER_PIDS[@]}")
    shards_phase shards3
    cluster_stop
  fi
  SHARD_PIDS=()
  MODE=redis
}

# ---- scenarios -------------------------------------------------------------------------------
scen_handshake() {
  local target=$1 c0 c1 r0 r1 m0 m1 t0 t1 out
  start_servers "$target" 1 || return 0
  c0=$(cpu_of "${SRV_PIDS[0]}") r0=$(cpu_of "$REDIS_PID") m0=$(busy_all) t0=$(now)
  out=$("$LG" --port "${SRV_PORTS[0]}" --conns "$HS_N" --secret "$SECRET" --procs "$PROCS" \
    --src-ips "$SRC_IPS" --concurrency 64 2>"$W/hs.err") || true
  c1=$(cpu_of "${SRV_PIDS[0]}") r1=$(cpu_of "$REDIS_PID") m1=$(busy_all) t1=$(now)
  record "$target" handshake "\"expected\":$HS_N" "\"loadgen\":${out:-null}" "\"server_cpu0\":[$c0]" \
    "\"server_cpu1\":[$c1]" "\"redis_cpu\":$(sub3 "$r0" "$r1")" "$(machine_json "$m0" "$m1")" \
    "\"wall_s\":$(sub3 "$t0" "$t1")"
  log "$target handshake: $(grep -o '"handshakes_per_s":[0-9.]*' <<<"$out")"
  stop_servers
}

scen_single() {
  local target=$1 rss0 rss1 rss2 j1 j2 idle_c0 idle_c1 vt
  start_servers "$target" 1 || return 0
  local pid=${SRV_PIDS[0]} port=${SRV_PORTS[0]}
  sleep 2
  rss0=$(rss_of "$pid")
  lg_start A --port "$port" --conns "$IDLE1" --rooms "$ROOMS" --join-also all --concurrency 64 || { stop_servers; return 0; }
  j1=$LG_LINE
  sleep 3
  rss1=$(rss_of "$pid")
  lg_start B --port "$port" --conns $((IDLE2 - IDLE1)) --offset "$IDLE1" --rooms "$ROOMS" --concurrency 64 || true
  j2=$LG_LINE
  sleep 3
  rss2=$(rss_of "$pid")
  record "$target" idle "\"conns1\":$IDLE1" "\"conns2\":$IDLE2" "\"rss0_kb\":$rss0" "\"rss1_kb\":$rss1" \
    "\"rss2_kb\":$rss2" "\"connect1\":$j1" "\"connect2\":$j2"
  log "$target idle: rss $rss0 -> $rss1 ($IDLE1) -> $rss2 KiB ($IDLE2)"
  lg_stop B
  sleep 2

  measure_phase "$target" A fanout $((IDLE1 * FAN_MSGS)) 15000 240000 --room all --count "$FAN_MSGS"
  local per_room=$(( IDLE1 / ROOMS ))
  measure_phase "$target" A rooms $((ROOMS_MSGS * per_room)) 10000 240000 --rooms "$ROOMS" --count "$ROOMS_MSGS"
  measure_phase "$target" A latency $((LAT_RATE * LAT_SECS * per_room)) 5000 $((LAT_SECS * 1000 + 120000)) \
    --rooms "$ROOMS" --rate "$LAT_RATE" --duration "$LAT_SECS"
  # room10k_rate: one room of IDLE1 ("all") at a fixed R10K_RATE messages/s
  local r10k_msgs=$(( R10K_RATE * R10K_SECS ))
  measure_phase "$target" A room10k_rate $((r10k_msgs * IDLE1)) 5000 $((R10K_SECS * 1000 + 120000)) \
    --room all --rate "$R10K_RATE" --count "$r10k_msgs"

  # void: the server's CPU while a room it has no member of gets VOID_RATE msg/s, over its CPU
  # in idle windows of the same length just before and just after (report.js takes the lower).
  vt=$(awk -v n="$VOID_MSGS" -v r="$VOID_RATE" 'BEGIN{printf "%.1f", n / r}')
  sleep 2
  idle_c0=$(cpu_of "$pid")
  sleep "$vt"
  idle_c1=$(cpu_of "$pid")
  measure_phase "$target" A void 0 0 "$(awk -v t="$vt" 'BEGIN{printf "%d", t * 1000 + 1000}')" \
    --room void --count "$VOID_MSGS" --rate "$VOID_RATE"
  local idle_c2 idle_c3
  idle_c2=$(cpu_of "$pid")
  sleep "$vt"
  idle_c3=$(cpu_of "$pid")
  record "$target" void_idle "\"idle_cpu_s\":[$(sub3 "$idle_c0" "$idle_c1"),$(sub3 "$idle_c2" "$idle_c3")]" "\"secs\":$vt"
  lg_stop A
  stop_servers
}

scen_cluster() {
  local target=$1 k=$2
  start_servers "$target" "$k" || return 0
  local ports
  ports=$(IFS=,; echo "${SRV_PORTS[*]}")
  lg_start C --port "$ports" --conns "$CL_N" --join-also all --concurrency 64 || { stop_servers; return 0; }
  record "$target" "cluster${k}_connect" "\"nodes\":$k" "\"connect\":$LG_LINE"
  measure_phase "$target" C "cluster$k" $((CL_N * CL_MSGS)) 15000 240000 --room all --count "$CL_MSGS"
  lg_stop C
  stop_servers
}

# formats: JSON envelope and emitter format, alternately, on one node with socketio.prefix set.
scen_formats() {
  local per_room=$(( IDLE1 / ROOMS )) i f
  RC_SIO_PREFIX=socket.io start_servers roomcast 1 || return 0
  lg_start F --port "${SRV_PORTS[0]}" --conns "$IDLE1" --rooms "$ROOMS" --join-also all --concurrency 64 || { stop_servers; return 0; }
  record roomcast formats_connect "\"rounds\":$FMT_ROUNDS" "\"connect\":$LG_LINE"
  sleep 2
  for i in $(seq 1 "$FMT_ROUNDS"); do
    for f in json emitter; do
      PUBFMT=$f measure_phase roomcast F "fmt_fanout_${f}_$i" $((IDLE1 * FAN_MSGS)) 15000 240000 \
        --room all --count "$FAN_MSGS"
      PUBFMT=$f measure_phase roomcast F "fmt_rooms_${f}_$i" $((ROOMS_MSGS * per_room)) 10000 240000 \
        --rooms "$ROOMS" --count "$ROOMS_MSGS"
    done
  done
  lg_stop F
  stop_servers
}

# rooms_max TARGET: messages/s of TARGET's "rooms" phase in this run (its deliveries/s over the
# members per room; "" when that phase did not run). xrate TARGET FRACTION: FRACTION of it.
rooms_max() {
  local d
  d=$(grep -F "{\"target\":\"$1\",\"scenario\":\"rooms\"," "$RES" | grep -o '"deliveries_per_s":[0-9.]*' |
    head -1 | cut -d: -f2) || true
  [ -n "$d" ] || return 0
  awk -v d="$d" -v m=$(( IDLE1 / ROOMS )) 'BEGIN{ if (d > 0) printf "%.1f", d / m }'
}
xrate() {
  local m
  m=$(rooms_max "$1")
  [ -n "$m" ] || return 0
  awk -v m="$m" -v f="$2" 'BEGIN{printf "%.1f", m * f}'
}
# the phase name of the latency curve point at FRACTION (0.5 is "xlatency", the criterion's point)
xname() { if [ "$1" = 0.5 ]; then echo xlatency; else echo "xcurve_$1"; fi; }

# xlatency TARGET NAME BASIS RATE [NAME RATE]...: XL_ROOMS rooms of IDLE1/ROOMS members over 2
# nodes; for each (NAME, RATE), RATE messages/s for XL_SECS s, round robin over the rooms, on the
# same two servers and connections; BASIS names whose "rooms" rate the RATEs are fractions of.
scen_xlatency() {
  local target=$1 first=$2 basis=$3 per_room=$(( IDLE1 / ROOMS ))
  shift 3
  [ -n "${2:-}" ] || { log "$target $first: no rooms rate from $basis, skipped"; return 0; }
  local n=$(( XL_ROOMS * per_room )) msgs name rate
  start_servers "$target" 2 || return 0
  local ports
  ports=$(IFS=,; echo "${SRV_PORTS[*]}")
  lg_start X --port "$ports" --conns "$n" --rooms "$XL_ROOMS" --concurrency 64 || { stop_servers; return 0; }
  record "$target" "${first}_connect" "\"nodes\":2" "\"connect\":$LG_LINE"
  sleep 1
  while [ $# -ge 2 ]; do
    name=$1 rate=$2
    shift 2
    msgs=$(awk -v r="$rate" -v s="$XL_SECS" 'BEGIN{printf "%d", r * s}')
    [ "$msgs" -gt 0 ] || continue
    log "$target $name: $XL_ROOMS rooms of $per_room over 2 nodes, $rate msg/s (of $basis's rooms rate) for $XL_SECS s"
    measure_phase "$target" X "$name" $((msgs * per_room)) 5000 $((XL_SECS * 1000 + 120000)) \
      --rooms "$XL_ROOMS" --rate "$rate" --count "$msgs"
    record "$target" "${name}_params" "\"rate\":$rate" "\"basis\":\"$basis\"" "\"rooms\":$XL_ROOMS" \
      "\"members\":$per_room" "\"nodes\":2" "\"secs\":$XL_SECS"
    sleep 1
  done
  lg_stop X
  stop_servers
}

# xcurve_args TARGET: "NAME RATE ..." for every fraction of XL_FRACTIONS of TARGET's rooms rate
xcurve_args() {
  local f r
  for f in $XL_FRACTIONS; do
    r=$(xrate "$1" "$f")
    [ -n "$r" ] && printf '%s %s ' "$(xname "$f")" "$r"
  done
}

# limit: the machine's floor, against the minimal server (no broker, no Redis, one process):
# the fanout phase's shape (IDLE1 connections joined like scen_single's, FAN_MSGS messages to all
# of them), then the fixed-rate phases: room10k_rate, and rooms of IDLE1/ROOMS at the rates of
# roomcast's latency curve (same names, "xlatency" and "xcurve_*"), written as they fall due.
scen_limit() {
  start_servers limit 1 || return 0
  lg_start L --port "${SRV_PORTS[0]}" --conns "$IDLE1" --rooms "$ROOMS" --join-also all --concurrency 64 || { stop_servers; return 0; }
  record limit connect "\"connect1\":$LG_LINE"
  sleep 2
  measure_phase limit L fanout $((IDLE1 * FAN_MSGS)) 15000 240000 --room all --count "$FAN_MSGS"
  local r10k_msgs=$(( R10K_RATE * R10K_SECS )) per_room=$(( IDLE1 / ROOMS )) f rate msgs name
  measure_phase limit L latency $((LAT_RATE * LAT_SECS * per_room)) 5000 $((LAT_SECS * 1000 + 120000)) \
    --rooms "$ROOMS" --rate "$LAT_RATE" --duration "$LAT_SECS"
  measure_phase limit L room10k_rate $((r10k_msgs * IDLE1)) 5000 $((R10K_SECS * 1000 + 120000)) \
    --room all --rate "$R10K_RATE" --count "$r10k_msgs"
  for f in $XL_FRACTIONS; do
    rate=$(xrate roomcast "$f")
    [ -n "$rate" ] || continue
    name=$(xname "$f")
    msgs=$(awk -v r="$rate" -v s="$XL_SECS" 'BEGIN{printf "%d", r * s}')
    [ "$msgs" -gt 0 ] || continue
    measure_phase limit L "$name" $((msgs * per_room)) 5000 $((XL_SECS * 1000 + 120000)) \
      --rooms "$ROOMS" --rate "$rate" --count "$msgs"
    record limit "${name}_params" "\"rate\":$rate" "\"basis\":\"roomcast\"" "\"rooms\":$ROOMS" \
      "\"members\":$per_room" "\"nodes\":1" "\"secs\":$XL_SECS"
  done
  lg_stop L
  stop_servers
}

# ---- run -------------------------------------------------------------------------------------
machine() {
  local model
  model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
  printf '{"machine":{"nproc":%s,"cpu":"%s","kernel":"%s","mem_gib":%s,"date":"%s","load_start":"%s","node":"%s","redis":"%s","commit":"%s","quick":%s,' \
    "$(nproc)" "$model" "$(uname -r)" "$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)" \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(node --version 2>/dev/null || echo none)" \
    "$(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)" \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" "${BENCH_QUICK:-0}"
  printf '"sizes":{"hs":%s,"idle1":%s,"idle2":%s,"fan_msgs":%s,"rooms":%s,"rooms_msgs":%s,"lat_rate":%s,"lat_secs":%s,"void_msgs":%s,"void_rate":%s,"cl_n":%s,"cl_msgs":%s,"r10k_rate":%s,"r10k_secs":%s,"xl_rooms":%s,"xl_secs":%s,"xl_fractions":"%s","sh_conns":%s,"sh_rooms":%s,"sh_msgs":%s,"procs":%s}}}\n' \
    "$HS_N" "$IDLE1" "$IDLE2" "$FAN_MSGS" "$ROOMS" "$ROOMS_MSGS" "$LAT_RATE" "$LAT_SECS" "$VOID_MSGS" "$VOID_RATE" "$CL_N" "$CL_MSGS" \
    "$R10K_RATE" "$R10K_SECS" "$XL_ROOMS" "$XL_SECS" "$XL_FRACTIONS" "$SH_CONNS" "$SH_ROOMS" "$SH_MSGS" "$PROCS"
}
# BENCH_PROFILE: a command run on the server during each paced phase ({pid}: the server's pid,
# {out}: a file name in the work directory), stopped with SIGINT when the phase ends; its output
# goes to <work dir>/profile-<target>-<path>-<phase>.log (keep it with BENCH_KEEP=1). E.g.
# 'strace -c -f -p {pid}' or 'perf record -e cpu-clock -g -p {pid} -o {out}.data'. Profiled runs
# perturb the CPU figures: take figures from runs without it.
PROF_PID=''
prof_start() {
  [ -n "${BENCH_PROFILE:-}" ] || return 0
  local cmd=${BENCH_PROFILE//\{pid\}/${SRV_PIDS[0]}}
  cmd=${cmd//\{out\}/$W/profile-$1}
  bash -c "exec $cmd" >"$W/profile-$1.log" 2>&1 &
  PROF_PID=$!
  sleep 1
}
prof_stop() {
  [ -n "$PROF_PID" ] || return 0
  kill -INT "$PROF_PID" 2>/dev/null || true
  wait "$PROF_PID" 2>/dev/null || true
  PROF_PID=''
}

# paced VARIANT: the paced family for one variant (see the top), recorded as target
# roomcast/node/limit, scenarios paced_one@<path> and paced_rooms@<path>.
scen_paced() {
  local target=${1%%:*} path=${1#*:} per_room=$(( P_CONNS / P_ROOMS ))
  [ "$path" = "$1" ] && path=$target
  local one_msgs rooms_msgs
  one_msgs=$(awk -v r="$P_ONE_RATE" -v s="$P_SECS" 'BEGIN{printf "%d", r * s}')
  rooms_msgs=$(awk -v r="$P_ROOMS_RATE" -v s="$P_SECS" 'BEGIN{printf "%d", r * s}')
  LIM_ARGS=()
  [ "$1" = limit:io_uring ] && LIM_ARGS=(--uring)
  if [ "$target" = roomcast ]; then export ROOMCAST_SEND_PATH=$path; fi
  log "== paced $1"
  start_servers "$target" 1 || { unset ROOMCAST_SEND_PATH; record "$target" "paced_unavailable@$path" "\"unavailable\":true"; return 0; }
  unset ROOMCAST_SEND_PATH
  lg_start P --port "${SRV_PORTS[0]}" --conns "$P_CONNS" --rooms "$P_ROOMS" --join-also all --concurrency 64 ||
    { stop_servers; return 0; }
  sleep 2
  prof_start "$target-$path-one"
  measure_phase "$target" P "paced_one@$path" $((one_msgs * P_CONNS)) 5000 $((P_SECS * 1000 + 120000)) \
    --room all --rate "$P_ONE_RATE" --count "$one_msgs"
  prof_stop
  sleep 1
  prof_start "$target-$path-rooms"
  measure_phase "$target" P "paced_rooms@$path" $((rooms_msgs * per_room)) 5000 $((P_SECS * 1000 + 120000)) \
    --rooms "$P_ROOMS" --rate "$P_ROOMS_RATE" --count "$rooms_msgs"
  prof_stop
  record "$target" "paced_params@$path" "\"conns\":$P_CONNS" "\"rooms\":$P_ROOMS" "\"one_rate\":$P_ONE_RATE" \
    "\"rooms_rate\":$P_ROOMS_RATE" "\"secs\":$P_SECS"
  lg_stop P
  stop_servers
  LIM_ARGS=()
}

# recovery: the paced phases with recovery off, then on (MODE redisapi: Redis backplane, every
# message through POST /api/publish), recorded as scenarios recovery_one@off|on and
# recovery_rooms@off|on.
scen_recovery() {
  local per_room=$(( P_CONNS / P_ROOMS )) state one_msgs rooms_msgs
  one_msgs=$(awk -v r="$P_ONE_RATE" -v s="$P_SECS" 'BEGIN{printf "%d", r * s}')
  rooms_msgs=$(awk -v r="$P_ROOMS_RATE" -v s="$P_SECS" 'BEGIN{printf "%d", r * s}')
  for state in off on; do
    local enabled=false
    [ "$state" = on ] && enabled=true
    cat >"$W/recovery-$state.json" <<JSON
{"namespaces": {"/": {"auth": "required", "recovery": {"enabled": $enabled, "maxDisconnectionDuration": 120000},
  "events": {"join": {"do": [{"join": "{data.room|data}"}, {"ack": {"ok": true, "room": "{room}"}}],
                      "onError": [{"ack": {"ok": false, "error": "{error}"}}]}}}}}
JSON
    log "== recovery $state"
    MODE=redisapi
    BENCH_ROOMCAST_CONFIG="$W/recovery-$state.json" start_servers roomcast 1 ||
      { record roomcast "recovery_unavailable@$state" "\"unavailable\":true"; continue; }
    lg_start R --port "${SRV_PORTS[0]}" --conns "$P_CONNS" --rooms "$P_ROOMS" --join-also all --concurrency 64 ||
      { stop_servers; continue; }
    sleep 2
    measure_phase roomcast R "recovery_one@$state" $((one_msgs * P_CONNS)) 5000 $((P_SECS * 1000 + 120000)) \
      --room all --rate "$P_ONE_RATE" --count "$one_msgs"
    sleep 1
    measure_phase roomcast R "recovery_rooms@$state" $((rooms_msgs * per_room)) 5000 $((P_SECS * 1000 + 120000)) \
      --rooms "$P_ROOMS" --rate "$P_ROOMS_RATE" --count "$rooms_msgs"
    record roomcast "recovery_params@$state" "\"conns\":$P_CONNS" "\"rooms\":$P_ROOMS" "\"one_rate\":$P_ONE_RATE" \
      "\"rooms_rate\":$P_ROOMS_RATE" "\"secs\":$P_SECS" \
      "\"history_entries\":$(redis-cli -p "$RPORT" XLEN 'roomcast:history:/')" \
      "\"history_bytes\":$(redis-cli -p "$RPORT" MEMORY USAGE 'roomcast:history:/' SAMPLES 0 | sed 's/^$/0/')"
    lg_stop R
    stop_servers
    redis-cli -p "$RPORT" DEL 'roomcast:history:/' >/dev/null
  done
  MODE=redis
}

machine >>"$RES"
T0=$(date +%s)
if [[ " $FAMILIES " == *" recovery "* ]] && [ -x "$RC" ]; then scen_recovery; fi
if [[ " $FAMILIES " == *" paced "* ]]; then
  MODE=redis
  if [[ " $PACED " == *" roomcast:"* ]]; then
    roomcast_mode || log "roomcast unavailable: its paced variants are skipped"
  fi
  for v in $PACED; do
    [[ $v == roomcast:* ]] && [ ! -x "$RC" ] && continue
    [[ $v == limit:* ]] && [ ! -x "$LIM" ] && continue
    scen_paced "$v"
  done
fi
[[ " $FAMILIES " == *" burst "* ]] || TARGETS=''
for target in $TARGETS; do
  if [ "$target" = limit ]; then
    if [ -x "$LIM" ]; then log "== limit"; scen_limit; else log "no $LIM: limit skipped"; fi
    continue
  fi
  if [ "$target" = shards ]; then
    log "== shards (one Redis against three cluster masters)"
    scen_shards
    continue
  fi
  if [ "$target" = roomcast ]; then
    roomcast_mode || { echo "{\"target\":\"roomcast\",\"scenario\":\"unavailable\"}" >>"$RES"; continue; }
    rcfg='""'
    [ -n "${BENCH_ROOMCAST_CONFIG:-}" ] && rcfg=$(node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(process.argv[1], "utf8").trim()))' "$BENCH_ROOMCAST_CONFIG")
    echo "{\"target\":\"roomcast\",\"scenario\":\"mode\",\"mode\":\"$MODE\",\"config\":$rcfg}" >>"$RES"
  fi
  log "== $target"
  if [ "${BENCH_ONLY:-}" = formats ]; then
    if [ "$target" = roomcast ] && [ "$MODE" = redis ]; then scen_formats; fi
    continue
  fi
  scen_handshake "$target"
  scen_single "$target"
  if [ "$target" = node ] || [ "$MODE" = redis ]; then
    scen_cluster "$target" 2
    scen_cluster "$target" 3
    # shellcheck disable=SC2046 # word splitting of "NAME RATE ..." is meant
    scen_xlatency "$target" xlatency "$target" $(xcurve_args "$target")
  fi
  if [ "$target" = roomcast ] && [ "$MODE" = redis ]; then scen_formats; fi
done
# like for like: roomcast (Redis backplane) at the rate Node's xlatency ran at
if [ "${BENCH_ONLY:-}" != formats ] && [[ " $TARGETS " == *" roomcast "* && " $TARGETS " == *" node "* ]] &&
  grep -qF '"scenario":"mode","mode":"redis"' "$RES"; then
  MODE=redis
  log "== roomcast at node's rate"
  scen_xlatency roomcast xlatency_noderate node xlatency_noderate "$(xrate node 0.5)"
fi
echo "{\"end\":{\"secs\":$(( $(date +%s) - T0 )),\"load_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}}" >>"$RES"
[ "${BENCH_KEEP:-0}" = 1 ] && cp "$RES" "$W/results.keep.jsonl"
[ -n "$TARGETS" ] && node "$HERE/report.js" "$RES" "$DOC"
if [[ " $FAMILIES " == *" paced "* ]]; then node "$HERE/paced-report.js" "$RES" "$DOC"; fi
if [[ " $FAMILIES " == *" recovery "* ]]; then node "$HERE/recovery-report.js" "$RES" "$DOC"; fi
