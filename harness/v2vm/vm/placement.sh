# Steps a and b: each run of /rbee/vm/plan (one test, or a whole package)
# runs as root in a test binary placed the way a CI runner or a developer
# would place it:
#   a  alone in a fresh cgroup right below the root (/ci-a), as a
#      container's namespace root or a delegated unit gives it;
#   b  in /user.slice/session-1.scope beside another process (a sleep,
#      standing for the login shell the tests are started from), the
#      controllers enabled down to user.slice as systemd does.
# Every run gets a fresh cgroup; what a run leaves there is gathered into
# one cleanup check per package, and removed before the next run.
. /rbee/vm/lib.sh
CG=/sys/fs/cgroup
case $STEP in
a) HOME_CG=$CG/ci-a ;;
b) HOME_CG=$CG/user.slice/session-1.scope ;;
esac
SLEEPER=

fresh() {
	case $STEP in
	a) mkdir "$HOME_CG" ;;
	b)
		mkdir -p "$HOME_CG"
		echo "+cpu +memory +io +pids" >$CG/user.slice/cgroup.subtree_control
		sleep 100000 </dev/null &
		SLEEPER=$!
		echo "$SLEEPER" >"$HOME_CG/cgroup.procs"
		;;
	esac
}

# teardown RUN: note what the run left behind (in LEFT, LEFTN), then kill
# it all and remove the cgroups.
teardown() {
	find "$HOME_CG" -mindepth 1 -type d | sed "s|^$HOME_CG/||" >/tmp/left
	_procs=
	for _p in $(cat "$HOME_CG"/cgroup.procs $(find "$HOME_CG" -mindepth 1 -name cgroup.procs)); do
		[ "$_p" = "$SLEEPER" ] || _procs="$_procs $_p($(cat /proc/"$_p"/comm 2>/dev/null))"
	done
	_procs=$(echo "$_procs" | cut -c 1-200)
	if [ -s /tmp/left ] || [ -n "$_procs" ]; then
		# Bounded: a tree nested a hundred deep would make a line of kilobytes.
		_deep=$(awk -F/ '{ if (NF > d) d = NF } END { print d + 0 }' /tmp/left)
		_some=$(awk -F/ '{ print $NF }' /tmp/left | sort -u | head -n 4 | tr '\n' ' ')
		LEFTN=$((LEFTN + 1))
		[ -n "$LEFT" ] || LEFT="$1: $(wc -l </tmp/left) cgroups nested up to $_deep deep [${_some% }], processes [${_procs# }]"
	fi
	[ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null
	echo 1 >"$HOME_CG/cgroup.kill"
	waitfor 10 grep -q "populated 0" "$HOME_CG/cgroup.events" ||
		note "$1: processes of ${HOME_CG#$CG} survived cgroup.kill"
	[ -n "$SLEEPER" ] && wait "$SLEEPER" 2>/dev/null
	find "$HOME_CG" -depth -type d -exec rmdir {} \; 2>/dev/null
	[ -d "$HOME_CG" ] && note "$1: could not remove ${HOME_CG#$CG}"
}

set -f # the plan's -test.run patterns are not globs
rc=0
cur=
# end_pkg closes the current package: its marker and its cleanup check.
end_pkg() {
	[ -n "$cur" ] || return 0
	mark pkg-end step="$STEP" pkg="$cur" rc=$prc secs="$(since "$t0")"
	[ $prc = 0 ] || rc=1
	[ "$LEFTN" = 0 ] || check "cleanup-$(basename "$cur")" fail "$LEFTN of $runs runs left something in ${HOME_CG#$CG}; the first: $LEFT"
	cur=
}
while read -r pkg test args; do
	case $pkg in '' | '#'*) continue ;; esac
	if [ "$pkg" != "$cur" ]; then
		end_pkg
		cur=$pkg prc=0 t0=$(uptime_s) runs=0 LEFT= LEFTN=0
		mark pkg-begin step="$STEP" pkg="$pkg"
	fi
	runs=$((runs + 1))
	fresh
	[ "$test" = - ] || mark run step="$STEP" pkg="$pkg" test="$test"
	t1=$(uptime_s)
	# The test binary moves itself into its cgroup before exec.
	# shellcheck disable=SC2086
	sh -c 'err=$(echo $$ 2>&1 >"$1/cgroup.procs") || {
			echo "@@rbee-v2 note step=$STEP :: could not put the test binary into ${1#/sys/fs/cgroup}: $err"; exit 125; }
		cd "$2" && shift 2 && exec "$@"' \
		sh "$HOME_CG" "/rbee/src/$pkg" "./$(basename "$pkg").test" $args </dev/null 2>&1
	r=$?
	[ "$test" = - ] || mark run-end step="$STEP" pkg="$pkg" test="$test" rc=$r secs="$(since "$t1")"
	[ $r = 0 ] || prc=$r
	[ "$test" = - ] && test="(the whole package)"
	teardown "$test"
done </rbee/vm/plan
end_pkg
[ $FAILED = 0 ] || rc=1
exit $rc
