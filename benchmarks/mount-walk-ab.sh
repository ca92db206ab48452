#!/bin/bash
# A/B of a cold metadata walk (find, du -s) through the mount's store and usr views, builds
# alternating in the same minutes, each run on a FRESH mount (a new server: the kernel's FUSE
# caches and the server's heap start empty) and without dropping the page cache (that slows
# everyone else on a shared machine; the store's index then stays cached: this measures the
# serving side, not the disk). DROP=1 drops it after the mount starts, as the mount benchmark's
# cold figures do (the index is then read from disk, or by the mount's index warmer).
# The server and the walk run at nice 19; RT=1 runs both under SCHED_FIFO (chrt -f 10) instead:
# at load 14+ a niced find was starved (3-31 s for a 1.2 s walk), under FIFO others' CPU barely
# moves it (not the quiet figure either: busy vCPUs never halt, see mount-ab.sh). NICE=0 runs
# both at the default priority.
#
#   STORE=/copy/of/store benchmarks/mount-walk-ab.sh ROUNDS SPEC...
#
# SPEC: a worktree with a built miq (dist/ and the addon), optionally with node flags for its
# server: WT@--max-semi-space-size=32. STORE must be a COPY (cp -a) of the bench store when old
# builds take part (a newer miq raises the store's version). OPS (default "find du") and VIEWS
# (default "store usr") narrow a run. Prints per run: wall, the server's CPU during the walk on
# its main thread and on all others, the load average, and each other thread's CPU above 0.02 s
# in thread-id order (for a cold find the fuse loop thread is the one at 0.4-0.7 s; the rest are
# V8's helpers and libuv's pool), then the request counts (MIQ_DEBUG_COUNTS).
# LS=0 walks without listing the directory before the drop (as benchmarks/mount.ts does: the
# walk's first lookups, of the store path and of usr, are then part of it).
# At a load of 5 a single run varies +-15 %: compare medians or sums over several rounds.
set -u
R=$1; shift
B=${BENCH:-/var/cache/miq-mount-bench}
S=${STORE:?set STORE to a copy of the bench store}; P=$(cat "$B/store.path")
TCK=$(getconf CLK_TCK)
PRI='nice -n 19'; [ "${RT:-0}" = 1 ] && PRI='chrt -f 10'; [ "${NICE:-19}" = 0 ] && PRI=''
M=$(mktemp -d /tmp/miq-walk-ab.XXXXXX); OUT=$M.out; ERR=$M.err
snap() { for t in /proc/$1/task/*; do awk '{print $1, $14+$15}' "$t/stat"; done | sort; }
trap 'mountpoint -q "$M" && umount -l "$M"; rm -f "$OUT" "$ERR" "$M.t0" "$M.t1"; rmdir "$M" 2>/dev/null' EXIT
for _ in $(seq 1 "$R"); do
  for op in ${OPS:-find du}; do
    for view in ${VIEWS:-store usr}; do
      for spec in "$@"; do
        wt=${spec%%@*}; fl=''; [ "$spec" != "$wt" ] && fl=$(echo "${spec#*@}" | tr ',' ' ')
        # No recall list (fs/recall.ts): the last mount's stop wrote one, and replaying it would warm this one.
        rm -f "$S"/run/mount-recall.*
        # Emptied first: the server truncates it only once it runs, and the wait below must not see the last run's "mounted".
        : > "$OUT"
        # shellcheck disable=SC2086
        MIQ_DEBUG_COUNTS=1 $PRI node $fl "$wt/bin/miq" --store "$S" mount "$M" --json > "$OUT" 2> "$ERR" & pid=$!
        for _ in $(seq 1 150); do grep -q mounted "$OUT" && break; sleep 0.2; done
        d=$M/store/$P; [ "$view" = usr ] && d=$M/usr
        [ "${LS:-1}" = 1 ] && ls "$d" > /dev/null
        [ "${DROP:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
        snap $pid > "$M.t0"
        s=$(date +%s.%N)
        if [ "$op" = find ]; then $PRI find "$d" > /dev/null; else $PRI du -s "$d" > /dev/null; fi
        e=$(date +%s.%N)
        snap $pid > "$M.t1"
        kill -TERM $pid; wait $pid 2>/dev/null
        join "$M.t0" "$M.t1" | awk -v t="$TCK" -v p=$pid -v w="$(echo "$e - $s" | bc)" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
          -v name="$(basename "$wt")${fl:+ $fl}" -v op="$op" -v view="$view" '
          { d = ($3 - $2) / t; if ($1 == p) main = d; else { other += d; if (d >= 0.02) busy = busy sprintf(" %.2f", d) } }
          END { printf "%-24s %-4s %-5s wall %5.2f main %5.2f other %5.2f load %s others:%s\n", name, op, view, w, main, other, l, busy }'
        grep -o 'requests .*' "$ERR" | head -c 1000 | grep -o "\"readdirplus\":[0-9]*\|\"lookup\":[0-9]*\|\"readdirServed\":[0-9]*\|\"spun\":[0-9]*\|\"lookupServed\":[0-9]*\|\"read\":[0-9]*\|\"getattr\":[0-9]*" | tr "\n" " "; echo
      done
    done
  done
done
