#!/bin/bash
# A/B of a program's start through the `usr` view (the mount benchmark's python figure), builds
# alternating in the same minutes on a fresh mount per run.
#
#   benchmarks/mount-py-ab.sh ROUNDS SPEC...
#
# SPEC: `plain` (the bench tree, bwrapped the same way), or a worktree with a built miq,
# optionally with environment for its mount: WT@MIQ_MOUNT_THREADS=1, and node flags after a #:
# WT#--always-sparkplug. DROP=1 drops the page cache
# after the mount starts (what the benchmark's "cold" does; without it the store's packs and index
# stay cached and only the mount is new). WARM=1 also times a second start on the same mount.
# Prints per run: wall seconds, the serving process's CPU (user+sys) during the start, its busiest
# threads, the load average and the request counts (MIQ_DEBUG_COUNTS). STORE: a copy of the bench
# store (cp -a) so other runs of the benchmark are not disturbed.
set -u
# RECALL=1: before each timed start of a miq spec, one untimed start on a mount of its own, whose
# stop writes the mount's recall list (fs/recall.ts): the timed start then replays the files that
# start read. Without it the list is removed before every mount: a start with no history.
# RT=1: the server and python under SCHED_FIFO (chrt -f 10), as mount-walk-ab.sh's RT: at load
# 8 a start's wall was bimodal (0.25 or 0.5 s) from others' CPU alone.
# NICE=1: both at nice -19 instead: the benchmark's scheduling class (SCHED_OTHER: python and the
# server's threads share the cores as on a quiet machine), shielded from other processes'
# SCHED_OTHER load (not from a SCHED_FIFO one).
# SCHED=1: per start, also the runqueue wait summed over the server's threads, and python's own
# CPU and runqueue wait (/proc/.../schedstat; python writes its own to stderr at exit).
# A start begins as soon as the mount says `mounted` (a 10 ms poll) and the page cache is dropped,
# as in benchmarks/mount.ts. Until the 2026-12-03/04 night this script polled every 0.2 s: 0-200 ms
# of idle went by first, and main against f098432 came out 7 of 12 (0.265 vs 0.267 s) where the
# same minutes without that slack gave 9 of 10 (0.214 vs 0.297 s), load ~3.5, default scheduling.
PRI=''; [ "${RT:-0}" = 1 ] && PRI='chrt -f 10'; [ "${NICE:-0}" = 1 ] && PRI='nice -n -19'
PYC='import json, sqlite3, ssl'
[ "${SCHED:-0}" = 1 ] && PYC="$PYC; import sys; sys.stderr.write('SCHED ' + open('/proc/self/schedstat').read())"
PYERR=/dev/null; [ "${SCHED:-0}" = 1 ] && PYERR=$(mktemp /tmp/miq-pyab-sched.XXXXXX)
R=$1; shift
B=${BENCH:-/var/cache/miq-mount-bench}
S=${STORE:-$B/store}
M=$(mktemp -d /tmp/miq-pyab.XXXXXX); OUT=$M.out; ERR=$M.err
TCK=$(getconf CLK_TCK)
cpu() { awk -v t="$TCK" '{print ($14+$15)/t}' "/proc/$1/stat"; }
# main: the serving (JS) thread; other: every other thread of the server (decode pool, libuv,
# V8's compiler and GC helpers, the FUSE loop, the pusher)
main() { awk -v t="$TCK" '{print ($14+$15)/t}' "/proc/$1/task/$1/stat"; }
py() { # USRDIR: one start, timed
  local s e
  s=$(date +%s.%N)
  $PRI bwrap --ro-bind "$1" /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --symlink usr/sbin /sbin --ro-bind /etc /etc --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c "$PYC" 2> "$PYERR"
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
# SCHED=1: python's CPU and runqueue wait in ms (from its last start), and the runqueue wait so far
# summed over the threads of process $1.
pysched() { [ "${SCHED:-0}" = 1 ] && awk '/^SCHED/ {printf " py cpu %.0f ms wait %.0f ms", $2/1e6, $3/1e6}' "$PYERR"; }
waited() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{w+=$2} END {printf "%.1f", w/1e6}'; }
# Until the mount says `mounted` (at most 30 s).
mounted() { for _ in $(seq 1 3000); do grep -q mounted "$OUT" && return; sleep 0.01; done; }
# A run cut short (timeout, ^C): the server is stopped and its mount let go even when the server
# died first (mountpoint -q fails on a dead connection; /proc/mounts still lists it).
pid=''
stop() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; for d in "$M/usr" "$M"; do grep -q " $d fuse" /proc/mounts && umount -l "$d"; done; rm -f "$OUT" "$ERR"; [ "$PYERR" != /dev/null ] && rm -f "$PYERR"; rmdir "$M" 2>/dev/null; }
trap stop EXIT
trap 'exit 130' INT TERM
for r in $(seq 1 "$R"); do
  for spec in "$@"; do
    if [ "$spec" = plain ]; then
      [ "${DROP:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
      t=$(py "$B/tree")
      printf '%-16s %-30s %6.3f s load %s%s\n' plain '' "$t" "$(cut -d' ' -f1 /proc/loadavg)" "$(pysched)"
      continue
    fi
    flags=''; case $spec in *'#'*) flags=$(echo "${spec#*#}" | tr ',' ' '); spec=${spec%%#*};; esac
    wt=${spec%%@*}; envs=''; [ "$spec" != "$wt" ] && envs=$(echo "${spec#*@}" | tr ',' ' ')
    rm -f "$S"/run/mount-recall.*
    if [ "${RECALL:-0}" = 1 ]; then
      # shellcheck disable=SC2086
      env $envs $PRI node $flags "$wt/bin/miq" --store "$S" mount "$M" --json > "$OUT" 2> "$ERR" & pid=$!
      mounted
      py "$M/usr" > /dev/null || { echo "recording start failed: $(tail -c 600 "$ERR")"; cat "$OUT"; }
      kill -TERM $pid; wait $pid; pid=''
    fi
    # shellcheck disable=SC2086
    env $envs MIQ_DEBUG_COUNTS=1 $PRI node $flags "$wt/bin/miq" --store "$S" mount "$M" --json > "$OUT" 2> "$ERR" & pid=$!
    mounted
    [ "${DROP:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
    q0=$(waited $pid); c0=$(cpu $pid); m0=$(main $pid); t=$(py "$M/usr"); c1=$(cpu $pid); m1=$(main $pid); q1=$(waited $pid)
    q=''; [ "${SCHED:-0}" = 1 ] && q=" server wait $(echo "$q1 - $q0" | bc) ms$(pysched)"
    w=''; [ "${WARM:-0}" = 1 ] && w="warm $(py "$M/usr") s"
    kill -TERM $pid; wait $pid; pid=''
    printf '%-16s %-30s %6.3f s %s cpu %5.2f s (main %5.2f)%s load %s %s\n' "$(basename "$wt")" "$envs$flags" "$t" "$w" \
      "$(echo "$c1 - $c0" | bc)" "$(echo "$m1 - $m0" | bc)" "$q" "$(cut -d' ' -f1 /proc/loadavg)" "$(grep -o 'requests .*' "$ERR" | head -c "${COUNTS:-600}")"
    [ -n "${LOG:-}" ] && grep -E "$LOG" "$ERR"
  done
done
