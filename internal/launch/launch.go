// Package launch starts worker processes with the least the hive can give
// them: on Linux through a shim (a re-execution of the hive's own binary)
// that joins the worker's cgroups (v1), sets no_new_privs, drops every
// capability, switches to the worker user, and only then executes the
// worker binary from a descriptor the hive opened and checked, with the
// worker's environment. The shim itself runs with an empty environment,
// so loader variables cannot reach the privileged part of the start.
package launch

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
)

// Credential is the user a worker runs as.
type Credential struct {
	UID, GID uint32
	// Groups are the supplementary groups; empty means none.
	Groups []uint32
	// Name is the user name, for HOME/USER and messages ("" if numeric).
	Name string
	// Home is the user's home directory, "" if unknown.
	Home string
}

// String names the credential for logs: "nobody (65534:65534)".
func (c *Credential) String() string {
	if c == nil {
		return "the hive's own user"
	}
	id := fmt.Sprintf("%d:%d", c.UID, c.GID)
	if c.Name != "" {
		return c.Name + " (" + id + ")"
	}
	return id
}

// BinDir is the directory workers may be started from (--worker-bin-dir).
type BinDir struct {
	// Path is the directory as configured; Real is it with links resolved.
	Path, Real string
}

// ErrBinary marks a binary that cannot be run (missing, not a regular
// executable file).
var ErrBinary = api.Class(api.ErrInvalid, "bad worker binary")

// ErrForbidden marks a binary the hive may not run: outside the allowed
// directory, reached through a link, or writable by others.
var ErrForbidden = api.Class(api.ErrForbidden, "binary not allowed")

// LookupUser resolves --worker-user: a user name, a uid, or uid:gid.
// A name takes its primary group and supplementary groups from the user
// database; a number without a group uses the user's primary group when
// the database has it, else the same number.
func LookupUser(spec string) (*Credential, error) {
	name, grp, hasGrp := strings.Cut(spec, ":")
	if name == "" {
		return nil, fmt.Errorf("worker user %q: empty user", spec)
	}
	c := &Credential{}
	var u *user.User
	if uid, err := strconv.ParseUint(name, 10, 32); err == nil {
		c.UID = uint32(uid)
		u, _ = user.LookupId(name)
		if !hasGrp && u == nil {
			c.GID = c.UID
		}
	} else {
		if u, err = user.Lookup(name); err != nil {
			return nil, fmt.Errorf("worker user %q: %w", spec, err)
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("worker user %q: uid %q is not a number", spec, u.Uid)
		}
		c.UID = uint32(uid)
	}
	if u != nil {
		c.Name, c.Home = u.Username, u.HomeDir
		if !hasGrp {
			gid, err := strconv.ParseUint(u.Gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("worker user %q: gid %q is not a number", spec, u.Gid)
			}
			c.GID = uint32(gid)
			if gs, err := u.GroupIds(); err == nil {
				for _, g := range gs {
					if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != c.GID {
						c.Groups = append(c.Groups, uint32(n))
					}
				}
			}
		}
	}
	if hasGrp {
		gid, err := strconv.ParseUint(grp, 10, 32)
		if err != nil {
			g, lerr := user.LookupGroup(grp)
			if lerr != nil {
				return nil, fmt.Errorf("worker user %q: group %q: %w", spec, grp, lerr)
			}
			if gid, err = strconv.ParseUint(g.Gid, 10, 32); err != nil {
				return nil, fmt.Errorf("worker user %q: gid %q is not a number", spec, g.Gid)
			}
		}
		c.GID = uint32(gid)
	}
	return c, nil
}

// Spec says how to start one worker.
type Spec struct {
	// Exe is the binary, opened by OpenBinary; Start executes this very
	// file, so a path swapped after the check cannot redirect it.
	Exe *os.File
	// Argv is the worker's argv, argv[0] included.
	Argv []string
	// Env is the worker's whole environment.
	Env []string
	// Dir is the working directory; "" means the hive's.
	Dir string
	// User is who the worker runs as; nil means the hive's own user. The
	// worker never has capabilities and always runs with no_new_privs.
	User *Credential
	// CgroupFD, when not nil, is a cgroup v2 directory the worker is
	// cloned into (CLONE_INTO_CGROUP): it never runs outside it.
	CgroupFD *os.File
	// JoinProcs are cgroup v1 cgroup.procs files the shim writes its pid
	// to before anything of the worker runs.
	JoinProcs []string
	// ReadOnly lists mount points (the cgroup filesystem) made read-only
	// in a private mount namespace when the worker runs as root, so that
	// a root worker without capabilities cannot rewrite its own limits.
	ReadOnly []string
	// Stdout and Stderr receive the worker's output; nil means /dev/null.
	Stdout, Stderr *os.File
}

// EnvAllowed reports why an environment variable may not be set for a
// worker, or "" if it may. Refused are the variables that make a loader,
// a libc or an interpreter run code the binary does not contain.
func EnvAllowed(name string) string {
	upper := strings.ToUpper(name)
	switch {
	case strings.HasPrefix(upper, "LD_"):
		return "dynamic loader variables (LD_*) are not allowed"
	case strings.HasPrefix(upper, "DYLD_"):
		return "dynamic loader variables (DYLD_*) are not allowed"
	}
	if why, ok := refusedEnv[upper]; ok {
		return why
	}
	return ""
}

// refusedEnv: glibc's list of variables it drops for setuid programs
// (unsecvars.h), plus shell and interpreter start-up hooks.
var refusedEnv = map[string]string{}

func init() {
	for _, v := range []string{"GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
		"MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR"} {
		refusedEnv[v] = v + " changes what libc loads and is not allowed"
	}
	for _, v := range []string{"BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND"} {
		refusedEnv[v] = v + " makes a shell run code at start and is not allowed"
	}
	for _, v := range []string{"PYTHONSTARTUP", "PYTHONINSPECT", "PERL5OPT", "PERL5DB", "RUBYOPT",
		"NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"} {
		refusedEnv[v] = v + " makes an interpreter run code at start and is not allowed"
	}
}

// resolveBinDir checks that dir is absolute and returns it with its links
// resolved.
func resolveBinDir(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("--worker-bin-dir %q: want an absolute path", dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("--worker-bin-dir: %w", err)
	}
	return real, nil
}
