#!/usr/bin/env bash
# Measures the CPU and memory cost of spectra-agent beside Debian's
# prometheus-node-exporter and collectd on this machine, one after the other,
# each doing comparable work (SPEC §7, issue 3). Prints one line per tool;
# docs/performance.md records the figures with this command.
#
#   apt-get install prometheus-node-exporter collectd-core   # once
#   cargo build --profile agent -p spectra-agent && cargo build --release -p spectra-server
#   scripts/compare-peers.sh            # DUR=60 by default
#
# CPU comes from the process's own utime+stime (/proc/<pid>/stat), so other
# load on the machine does not inflate it; RSS is VmRSS at the end and VmHWM
# (peak). Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-60}
TARGET=${CARGO_TARGET_DIR:-target}
AGENT=${AGENT:-$TARGET/agent/spectra-agent}
SERVER=${SERVER:-$TARGET/release/spectra-server}
HZ=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# utime+stime in ticks, counted after the ")" closing the command name.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
report() { # name pid ticks-before units-of-work unit-name
  local used=$(( $(ticks "$2") - $3 ))
  awk -v n="$1" -v t="$used" -v hz="$HZ" -v w="$4" -v u="$5" -v d="$DUR" \
      -v rss="$(kib "$2" VmRSS)" -v hwm="$(kib "$2" VmHWM)" 'BEGIN {
    printf "%-16s %8.3f ms CPU per %-9s %7.4f %% of a core   RSS %6.1f MiB (peak %5.1f MiB)\n",
      n, t / hz * 1000 / w, u, t / hz / d * 100, rss / 1024, hwm / 1024 }'
}

echo "machine: $(nproc) cores, $(uname -r); $(ls -d /proc/[0-9]* | wc -l) processes; ${DUR}s per tool"

# --- node_exporter, default collectors, scraped once a second -------------
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 >"$WORK/ne.log" 2>&1 &
NE=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19100/metrics && break; sleep 0.1; done
curl -sf -o /dev/null http://127.0.0.1:19100/metrics
before=$(ticks $NE)
for _ in $(seq "$DUR"); do curl -sf -o /dev/null http://127.0.0.1:19100/metrics; sleep 1; done
report node_exporter $NE "$before" "$DUR" scrape
kill $NE; wait $NE 2>/dev/null || true

# --- collectd, 1 s interval, the plugins matching Spectra's collectors ------
cat >"$WORK/collectd.conf" <<EOF
Interval 1
BaseDir "$WORK"
PIDFile "$WORK/collectd.pid"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin swap
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin processes
LoadPlugin uptime
LoadPlugin users
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "25826"
</Plugin>
EOF
collectd -f -C "$WORK/collectd.conf" >"$WORK/collectd.log" 2>&1 &
CD=$!
sleep 2
before=$(ticks $CD)
sleep "$DUR"
report collectd $CD "$before" "$DUR" interval
kill $CD; wait $CD 2>/dev/null || true

# --- spectra-agent, every Linux collector at 1 s, sending to a local server --
SPECTRA_ADMIN_TOKEN=compare-admin-token SPECTRA_ENROLL_TOKEN=compare-enroll-token \
  "$SERVER" --listen 127.0.0.1:0 --data-dir "$WORK/server" --no-local-agent >"$WORK/server.out" 2>"$WORK/server.err" &
SV=$!
for _ in $(seq 100); do grep -q '^listening on' "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(head -1 "$WORK/server.out" | awk '{print $3}')
{
  for c in cpu memory disk disk_io network process_list temperature wifi system; do
    printf '[collectors.%s]\ninterval = "1s"\n' "$c"
  done
  printf '[collectors.application_list]\nenabled = false\n[collectors.updates]\nenabled = false\n'
} >"$WORK/agent.toml"
SPECTRA_SERVER="http://$ADDR" SPECTRA_TOKEN=compare-enroll-token SPECTRA_AGENT_STATE_DIR="$WORK/agent" \
  "$AGENT" --config "$WORK/agent.toml" >"$WORK/agent.log" 2>&1 &
AG=$!
sleep 3
before=$(ticks $AG)
sleep "$DUR"
report "spectra-agent" $AG "$before" "$DUR" cycle
kill $AG; wait $AG 2>/dev/null || true

# --- spectra-agent at its default intervals (5-300 s) ------------------------
rm -rf "$WORK/agent"
SPECTRA_SERVER="http://$ADDR" SPECTRA_TOKEN=compare-enroll-token SPECTRA_AGENT_STATE_DIR="$WORK/agent" \
  "$AGENT" >"$WORK/agent2.log" 2>&1 &
AG=$!
sleep 3
before=$(ticks $AG)
sleep "$DUR"
report "spectra (dflt)" $AG "$before" "$DUR" second
kill $AG $SV; wait 2>/dev/null || true
