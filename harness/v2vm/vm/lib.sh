# Shared by the VM's scripts (busybox ash and Debian's bash): the result
# markers that harness/v2vm/marker.go reads back from the serial console,
# and small helpers. STEP names the step being run.

mark() { echo "@@rbee-v2 $*"; }

# uptime_s prints the seconds since boot; since T the seconds since T.
uptime_s() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

# check NAME ok|fail TEXT...: one verdict; any fail fails the step.
FAILED=0
check() {
	_name=$1 _result=$2
	shift 2
	[ "$_result" = ok ] || FAILED=1
	mark check step="$STEP" name="$_name" result="$_result" :: "$*"
}

# note TEXT...: a line worth keeping in the summary.
note() { mark note step="$STEP" :: "$*"; }

# field KEY < JSON: a top-level field of rbee's indented JSON, unquoted.
field() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" | head -n 1; }

# waitfor SECONDS COMMAND...: run COMMAND every half second until it
# succeeds; fails after SECONDS.
waitfor() {
	_n=$(($1 * 2))
	shift
	while [ "$_n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
		_n=$((_n - 1))
	done
	return 1
}

# tree DIR: the cgroups below DIR with their processes and enabled
# controllers, one line each, for diagnostics.
tree() {
	find "$1" -type d | sort | while read -r _d; do
		echo "${_d#/sys/fs/cgroup} procs=[$(tr '\n' ' ' <"$_d/cgroup.procs" | sed 's/ $//')] subtree_control=[$(cat "$_d/cgroup.subtree_control")]"
	done
}
