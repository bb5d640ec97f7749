# Step c, first a hive with its defaults started from a login shell (its
# cgroup, /user.slice/session-2.scope, holds the shell too) on this host
# without systemd: it must place its workers below the root, enforce
# their limits, count a worker's child, and leave nothing behind when it
# exits with no worker left.
# Then a hive restarted the way systemd restarts a Delegate=yes
# service. The hive runs alone in /system.slice/rbee-hive.service; a
# worker is spawned through the CLI with a memory limit; the hive gets
# SIGTERM (it leaves its workers running by default); then a new hive
# process is put into the same cgroup exactly as systemd does on a
# restart: the pid written to cgroup.procs before exec. That write must
# succeed, and the new hive must re-adopt the worker with its limit.
. /rbee/vm/lib.sh
CG=/sys/fs/cgroup
UNIT=/system.slice/rbee-hive.service
BIN=/rbee/bin
export RBEE_STATE_DIR=/var/lib/rbee # the CLI finds the hive's generated token there
mkdir -p -m 700 $RBEE_STATE_DIR
mkdir -p $CG$UNIT
echo "+cpu +memory +io +pids" >$CG/system.slice/cgroup.subtree_control
LIMIT=67108864 # 64Mi

# start_hive N [CGROUP]: fork, move into CGROUP (default the unit's), exec
# the hive (systemd's ExecStart); exit 219 (systemd's CGROUP status) when
# the move is refused, its error in /tmp/move-N.err.
start_hive() {
	sh -c 'echo $$ 2>"/tmp/move-$2.err" >"$1/cgroup.procs" || exit 219; shift 2; exec "$@"' \
		sh "$CG${2:-$UNIT}" "$1" $BIN/rbee-hive --listen 127.0.0.1:7835 --queen "" --gpu none \
		</dev/null >"/tmp/hive-$1.log" 2>&1 &
	HIVE=$!
}

# ready: the hive answers, or it has exited.
ready() { $BIN/rbee-hive info >/dev/null 2>&1 || ! kill -0 "$HIVE" 2>/dev/null; }
answers() { $BIN/rbee-hive info >/dev/null 2>&1; }

# hivelog N: the last lines of hive N's log as notes.
hivelog() { tail -n "${2:-15}" "/tmp/hive-$1.log" | while read -r l; do note "hive $1: $l"; done; }

# pidcount: the number of pids in `rbee-hive show`'s indented JSON.
pidcount() { awk '/"pids": \[/ { f = 1; next } f && /\]/ { f = 0 } f { n++ } END { print n + 0 }'; }

SESSION=/user.slice/session-2.scope
mkdir -p $CG$SESSION
echo "+cpu +memory +io +pids" >$CG/user.slice/cgroup.subtree_control
sleep 100000 </dev/null &
SHELLPID=$!
echo $SHELLPID >$CG$SESSION/cgroup.procs
start_hive 0 $SESSION
waitfor 60 ready
if ! answers; then
	check login-start fail "a hive started from a login shell did not come up: $(cat /tmp/move-0.err)"
	hivelog 0
	exit 1
fi
$BIN/rbee-hive info >/tmp/info0.json 2>&1
parent=$(field cgroup_parent </tmp/info0.json)
if [ "$(field limits_enforced </tmp/info0.json)" = true ] && [ "$parent" = /rbee.slice ]; then
	check login-placement ok "cgroup_parent $parent: $(field cgroup_placement </tmp/info0.json)"
else
	check login-placement fail "limits_enforced $(field limits_enforced </tmp/info0.json), cgroup_parent '$parent', reason: $(field limits_reason </tmp/info0.json)"
fi
if $BIN/rbee-hive spawn --instance 9300 --memory-limit 64Mi --json -- \
	$BIN/testworker --model v2-login --children 1 --child-mem 24Mi >/tmp/spawn0.json 2>/tmp/spawn0.err; then
	WCG=$(field cgroup </tmp/spawn0.json)
	max=$(cat "$CG$WCG/memory.max" 2>&1)
	[ "$max" = $LIMIT ] && check login-limit ok "$WCG/memory.max = $max" ||
		check login-limit fail "$WCG/memory.max = '$max', want $LIMIT"
	kids() {
		$BIN/rbee-hive show llm-9300 >/tmp/show0.json 2>&1 && [ "$(pidcount </tmp/show0.json)" = 2 ] &&
			[ "$(field mem_rss_bytes </tmp/show0.json)" -ge $((24 << 20)) ]
	}
	if waitfor 20 kids; then
		check login-children ok "llm-9300: 2 pids, mem_rss_bytes $(field mem_rss_bytes </tmp/show0.json) (the child holds 24 MiB)"
	else
		check login-children fail "llm-9300: $(pidcount </tmp/show0.json) pids, mem_rss_bytes '$(field mem_rss_bytes </tmp/show0.json)', want 2 and >= 24 MiB"
	fi
	$BIN/rbee-hive stop llm-9300 >/dev/null 2>&1
else
	check login-spawn fail "$(cat /tmp/spawn0.err)"
fi
kill -TERM "$HIVE"
wait "$HIVE"
left=$(find $CG/rbee.slice -mindepth 1 -type d 2>/dev/null | tr '\n' ' ')
if [ "$(cat $CG$SESSION/cgroup.subtree_control)" = "" ] && [ -z "$left" ]; then
	check login-cleanup ok "the session's cgroup untouched, nothing left below /rbee.slice"
else
	check login-cleanup fail "the session's subtree_control '$(cat $CG$SESSION/cgroup.subtree_control)', left below /rbee.slice: $left"
fi
# The GPU bundle's run.sh runs each test binary through cgexec from such
# a shell: the real-cgroup tests must pass there too.
(
	echo $$ >$CG$SESSION/cgroup.procs && cd /rbee/src/internal/cgroups &&
		exec $BIN/cgexec v2-login -- ./cgroups.test -test.count=1 -test.run '^TestReal'
) >/tmp/cgexec.out 2>&1
st=$?
if [ $st = 0 ] && grep -q '^PASS' /tmp/cgexec.out && [ ! -d $CG/rbee-run-v2-login ]; then
	check login-cgexec ok "cgexec from the shell's cgroup: the cgroups package's TestReal* pass"
else
	check login-cgexec fail "cgexec from the shell's cgroup: exit $st, $(tail -n 5 /tmp/cgexec.out | tr '\n' ' ')"
fi
kill $SHELLPID

start_hive 1
waitfor 60 ready
if ! answers; then
	check first-start fail "the first hive did not come up in $UNIT: $(cat /tmp/move-1.err)"
	hivelog 1
	exit 1
fi
check first-start ok "hive pid $HIVE in $(sed 's/^0:://' /proc/$HIVE/cgroup)"

if ! $BIN/rbee-hive spawn --instance 9301 --memory-limit 64Mi --json -- \
	$BIN/testworker --model v2-restart --mem 8Mi >/tmp/spawn.json 2>/tmp/spawn.err; then
	check spawn fail "$(cat /tmp/spawn.err)"
	hivelog 1
	exit 1
fi
WPID=$(field pid </tmp/spawn.json)
WCG=$(field cgroup </tmp/spawn.json)
check spawn ok "worker llm-9301 pid $WPID in ${WCG:-no cgroup}, limits_enforced $(field limits_enforced </tmp/spawn.json)"
max=$(cat "$CG$WCG/memory.max" 2>&1)
if [ "$max" = $LIMIT ]; then
	check limit ok "$WCG/memory.max = $max"
else
	check limit fail "$WCG/memory.max = '$max', want $LIMIT"
fi
note "before the restart: $(tree $CG/system.slice | tr '\n' ';')"

kill -TERM "$HIVE"
wait "$HIVE"
note "the first hive exited with status $? on SIGTERM"
if kill -0 "$WPID" 2>/dev/null; then
	check worker-survives ok "worker pid $WPID still runs after the hive's exit"
else
	check worker-survives fail "worker pid $WPID died with the hive"
fi
note "after the hive's exit: $(tree $CG$UNIT | tr '\n' ';')"

start_hive 2
waitfor 60 ready
if [ -s /tmp/move-2.err ] || ! kill -0 "$HIVE" 2>/dev/null; then
	wait "$HIVE"
	st=$?
	check move fail "the restarted hive could not be put into $UNIT as systemd does on a restart" \
		"(exit $st: $(cat /tmp/move-2.err)); $UNIT/cgroup.subtree_control holds" \
		"'$(cat $CG$UNIT/cgroup.subtree_control)', so the kernel refuses processes there (no internal processes);" \
		"systemd fails such a restart with status=219/CGROUP"
	hivelog 2 5
	# What a hive started elsewhere would do, for the record.
	mkdir -p $CG/system.slice/rbee-hive-diag.scope
	start_hive 3 /system.slice/rbee-hive-diag.scope
	waitfor 60 ready
	seen() { $BIN/rbee-hive show llm-9301 >/tmp/show.json 2>&1; }
	if answers && waitfor 15 seen; then
		note "diagnostic: a hive started outside the unit's cgroup sees llm-9301 pid $(field pid </tmp/show.json)" \
			"state $(field state </tmp/show.json) mem_limit_bytes $(field mem_limit_bytes </tmp/show.json)"
	else
		note "diagnostic: a hive started outside the unit's cgroup does not show llm-9301: $(cat /tmp/show.json)"
		hivelog 3 5
	fi
else
	check move ok "the restarted hive (pid $HIVE) joined $UNIT"
	show() { $BIN/rbee-hive show llm-9301 >/tmp/show.json 2>&1 && [ "$(field pid </tmp/show.json)" = "$WPID" ]; }
	if answers && waitfor 30 show; then
		got=$(field mem_limit_bytes </tmp/show.json)
		state=$(field state </tmp/show.json)
		if [ "$got" = $LIMIT ] && [ "$state" != exited ]; then
			check readopt ok "llm-9301 pid $WPID re-adopted, state $state, mem_limit_bytes $got"
		else
			check readopt fail "llm-9301 re-adopted with state $state mem_limit_bytes $got, want a live worker and $LIMIT"
		fi
	else
		check readopt fail "the restarted hive does not show llm-9301 pid $WPID: $(cat /tmp/show.json)"
		hivelog 2
	fi
fi
$BIN/rbee-hive stop llm-9301 >/dev/null 2>&1
kill -TERM "$HIVE" 2>/dev/null
wait "$HIVE" 2>/dev/null
[ $FAILED = 0 ]
