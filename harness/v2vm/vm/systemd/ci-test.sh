#!/bin/bash
# The systemd steps' test (ci-test.service runs it once the system is up):
# the repository's deploy/systemd/rbee-hive.service, installed as shipped,
# started, a worker spawned with a memory limit, then `systemctl restart
# rbee-hive`: the new hive must be running (ActiveState=active,
# ExecMainStatus=0; systemctl's own exit code says nothing with
# Type=simple) and must have re-adopted the worker with its limit.
set -u
. /usr/local/lib/rbee-ci/lib.sh
. /usr/local/lib/rbee-ci/env # WORKER_USER, WORKER_BIN, RBEE_HIVE, RBEE_CA, RBEE_TOKEN_FILE
export RBEE_HIVE RBEE_CA RBEE_TOKEN_FILE
STEP=$(sed -n 's/.*rbee_step=\([^ ]*\).*/\1/p' /proc/cmdline)
CG=/sys/fs/cgroup
LIMIT=67108864 # 64Mi
HIVE=/usr/local/bin/rbee-hive
mark step-begin step="$STEP"
T0=$(uptime_s)
finish() {
	mark step-end step="$STEP" rc="$1" secs="$(since "$T0")"
	exit 0 # ExecStopPost powers off either way
}
note "$(systemctl --version | head -n 1), kernel $(uname -r), $(stat -fc %T $CG) at $CG"

props() { systemctl show rbee-hive -p ActiveState -p SubState -p MainPID -p ExecMainCode -p ExecMainStatus -p NRestarts -p Result | tr '\n' ' '; }
prop() { systemctl show rbee-hive -p "$1" --value; }
journal() { journalctl -u rbee-hive -o cat --no-pager -n "${1:-15}" | while IFS= read -r l; do note "journal: $l"; done; }

id "$WORKER_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$WORKER_USER"

systemctl start rbee-hive
if ! waitfor 60 "$HIVE" info || [ "$(prop ActiveState)" != active ]; then
	check start fail "rbee-hive.service did not come up: $(props)"
	journal 30
	finish 1
fi
check start ok "$(props)"

if ! "$HIVE" spawn --instance 9301 --memory-limit 64Mi --json -- "$WORKER_BIN" --model v2-systemd --mem 8Mi >/tmp/spawn.json 2>/tmp/spawn.err; then
	check spawn fail "$(cat /tmp/spawn.err)"
	journal
	finish 1
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
note "before the restart: $(tree $CG/system.slice/rbee-hive.service | tr '\n' ';')"

systemctl restart rbee-hive
src=$?
# Type=simple: systemctl returns once the process is forked, so watch the
# unit settle: active with ExecMainStatus=0 and no automatic restart for 3
# s in a row, within 40 s; failed ends the wait.
stable=0
for _ in $(seq 40); do
	p=$(props)
	get() { echo "$p" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
	[ "$(get ActiveState)" = failed ] && break
	if [ "$(get ActiveState)" = active ] && [ "$(get ExecMainStatus)" = 0 ] && [ "$(get NRestarts)" = 0 ] &&
		"$HIVE" info >/dev/null 2>&1; then
		stable=$((stable + 1))
		[ $stable -ge 3 ] && break
	else
		stable=0
	fi
	sleep 1
done
if [ $stable -ge 3 ]; then
	check restart ok "systemctl restart exit $src; $(props)"
else
	why=
	[ "$(prop ExecMainStatus)" = 219 ] && why=" (219/CGROUP: systemd could not put the new hive into its unit's cgroup)"
	check restart fail "after systemctl restart (exit $src): $(props)$why"
	{
		journalctl -b -o cat --no-pager | grep -m 1 -i 'attach.*cgroup'
		journalctl -u rbee-hive -o cat --no-pager | grep -m 1 'status=219'
	} | while IFS= read -r l; do note "journal: $l"; done
fi

show() { "$HIVE" show llm-9301 >/tmp/show.json 2>&1 && [ "$(field pid </tmp/show.json)" = "$WPID" ]; }
alive=$(kill -0 "$WPID" 2>/dev/null && echo "still runs" || echo "is gone")
if ! "$HIVE" info >/dev/null 2>&1; then
	check readopt fail "no hive answers after the restart; worker pid $WPID $alive"
elif waitfor 30 show; then
	got=$(field mem_limit_bytes </tmp/show.json)
	state=$(field state </tmp/show.json)
	if [ "$got" = $LIMIT ] && [ "$state" != exited ]; then
		check readopt ok "llm-9301 pid $WPID re-adopted, state $state, mem_limit_bytes $got"
	else
		check readopt fail "llm-9301 re-adopted with state $state mem_limit_bytes $got, want a live worker and $LIMIT"
	fi
else
	check readopt fail "the restarted hive does not show llm-9301 pid $WPID ($(head -c 300 /tmp/show.json | tr '\n' ' ')); the worker $alive"
fi
note "after the restart: $(tree $CG/system.slice/rbee-hive.service | tr '\n' ';')"

"$HIVE" stop llm-9301 >/dev/null 2>&1
systemctl stop rbee-hive
state=$(prop ActiveState)
if [ "$state" = inactive ] || [ "$state" = failed ]; then
	note "systemctl stop: $(props)"
else
	check stop fail "after systemctl stop: $(props)"
fi
[ $FAILED = 0 ]
finish $?
