package cgroups

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The systemd units of the workers' tree on a systemd host: one delegated
// scope, in a slice of its own, holding every worker cgroup below it (as
// <scope>/<group>/<instance>) and the keeper process in a leaf.
const (
	SystemdSlice = "rbee.slice"
	SystemdScope = "rbee-workers.scope"
	// RootParent is the workers' tree right below the mount root on a
	// v2 host without systemd.
	RootParent = "/rbee.slice"
	// keeperLeaf holds the keeper: not a worker name (":" is not allowed
	// in one), so no group can take it and listTree skips it.
	keeperLeaf = "rbee:keeper"
)

// systemdTimeout bounds the D-Bus calls that make the scope.
const systemdTimeout = 30 * time.Second

// place chooses the parent of the workers' tree on a v2 host and how to
// make it (m.ensure), without making anything yet. The hive's own cgroup
// is never the parent nor above it: cgroup v2 lets a cgroup that holds a
// process delegate no controllers, and a hive that moved itself into a
// leaf of its own unit's cgroup to make room could never be put back
// there by the service manager that restarts it.
func (m *v2Manager) place(cfg Config, own, parent string) error {
	switch {
	case parent != "" && !filepath.IsAbs(parent):
		return fmt.Errorf("--cgroup-parent %q is relative to the hive's own cgroup %s: on cgroup v2 that cgroup would have to delegate controllers, which it cannot while it holds the hive, and a service manager could not put a restarted hive back into it; give an absolute path (e.g. %s) or leave --cgroup-parent unset", parent, own, RootParent)
	case parent != "":
		m.parent = filepath.Clean(parent)
		if within(m.parent, own) {
			if filepath.Clean("/"+own) == "/" {
				return fmt.Errorf("--cgroup-parent %s is below the hive's own cgroup, the root of this cgroup namespace (a container's): cgroup v2 lets it delegate controllers only once it holds no process; move every process of %s into a child cgroup first (as docker-in-docker does: mkdir %s/init and write each pid of its cgroup.procs to %s/init/cgroup.procs), then start the hive", m.parent, m.root, m.root, m.root)
			}
			return fmt.Errorf("--cgroup-parent %s is the hive's own cgroup %s or below it: on cgroup v2 that cgroup cannot delegate controllers while it holds the hive; give a path outside it (e.g. %s)", m.parent, own, RootParent)
		}
		m.how = "--cgroup-parent"
		m.ensure = m.makeParent
		return nil
	}
	sd := cfg.Systemd
	if sd == nil && cfg.root() == DefaultRoot && systemdBooted() {
		sd = systemdDBus{}
	}
	if sd != nil {
		if cfg.Keeper == nil {
			return fmt.Errorf("systemd runs this host, and this program cannot start the process that keeps a delegated scope alive; give --cgroup-parent an absolute path")
		}
		m.how = fmt.Sprintf("systemd: the delegated scope %s in %s, made over D-Bus (systemctl status %s)", SystemdScope, SystemdSlice, SystemdScope)
		m.ensure = func() error { return m.ensureScope(sd, cfg.Keeper) }
		// The scope's cgroup is systemd's to name: known once it runs.
		m.parent = "/" + SystemdSlice + "/" + SystemdScope
		return nil
	}
	// No systemd: a cgroup right below the root of the mount (a
	// container's cgroup namespace root), when the root offers the
	// controllers to its children.
	have, err := readFields(filepath.Join(m.root, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("read root controllers: %w", err)
	}
	if !slices.Contains(have, "cpu") || !slices.Contains(have, "memory") {
		if procs, _ := readPidsFile(filepath.Join(m.root, "cgroup.procs")); len(procs) > 0 && filepath.Clean("/"+own) == "/" {
			// A container's namespace root with its processes in it: the
			// write below would fail with EBUSY.
			return fmt.Errorf("no systemd runs this host, and the cgroup root (%s) offers its children no cpu and memory controllers, and holds processes (this container's): move them into a child cgroup (mkdir %s/init; write each pid of %s/cgroup.procs to %s/init/cgroup.procs), then enable the controllers (echo +cpu +memory +io +pids > %s), as docker-in-docker does; or give --cgroup-parent an absolute path to a cgroup delegated to the hive",
				m.root, m.root, m.root, m.root, filepath.Join(m.root, "cgroup.subtree_control"))
		}
		return fmt.Errorf("no systemd runs this host, and the cgroup root (%s) offers its children no cpu and memory controllers (cgroup.subtree_control: %q): enable them there (echo +cpu +memory +io +pids > %s), or give --cgroup-parent an absolute path to a cgroup delegated to the hive",
			m.root, strings.Join(have, " "), filepath.Join(m.root, "cgroup.subtree_control"))
	}
	m.parent, m.how = RootParent, "below the cgroup root (no systemd; the root offers the controllers)"
	m.ensure = m.makeParent
	return nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	dir = filepath.Clean("/" + dir)
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// systemdBooted reports whether systemd is this host's init, as
// sd_booted(3) tells.
func systemdBooted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// ensureScope makes the workers' tree a delegated systemd scope: the
// scope is started (with a keeper process, as a scope exists only while
// it holds one) unless it runs, the keeper is moved into a leaf of its
// own and kept there, and the controllers are enabled below the scope.
func (m *v2Manager) ensureScope(sd Systemd, start func() (*os.Process, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
	defer cancel()
	k := &keeper{start: start}
	cg, err := sd.Scope(ctx, SystemdSlice, SystemdScope, k.startOnce)
	if err != nil {
		k.stop()
		return fmt.Errorf("systemd scope %s: %w", SystemdScope, err)
	}
	// systemd names the scope's cgroup; it moves only if systemd's
	// layout does (written only then: readers of the parent do not lock).
	if p := filepath.Clean("/" + cg); p != m.parent {
		m.parent = p
	}
	dir := m.dir(m.parent)
	leaf := filepath.Join(dir, keeperLeaf)
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		k.stop()
		return fmt.Errorf("make the keeper's leaf: %w", err)
	}
	// What sits in the scope itself is a keeper (ours, or an earlier
	// hive's that had not moved it yet): into the leaf, so the scope may
	// delegate.
	pids, err := readPidsFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		k.stop()
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, pid := range pids {
		if err := movePid(leaf, pid); err != nil {
			k.stop()
			return err
		}
	}
	if left, _ := readPidsFile(filepath.Join(leaf, "cgroup.procs")); len(left) == 0 {
		// The scope runs on workers alone (its keeper was killed): a
		// new keeper, straight into the leaf.
		p, err := k.startOnce()
		if err != nil {
			return fmt.Errorf("start a keeper for %s: %w", SystemdScope, err)
		}
		if err := movePid(leaf, p); err != nil {
			k.stop()
			return err
		}
	}
	if m.keeper == nil || k.proc != nil {
		m.keeper = k
	}
	return m.makeParent()
}

func movePid(cgroupDir string, pid int) error {
	if err := os.WriteFile(filepath.Join(cgroupDir, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0); err != nil {
		return fmt.Errorf("move pid %d into %s: %w", pid, cgroupDir, err)
	}
	return nil
}

// keeper is the process that keeps the systemd scope alive, when this
// hive started it.
type keeper struct {
	start func() (*os.Process, error)
	proc  *os.Process
}

// startOnce starts the keeper, or returns the one started already.
func (k *keeper) startOnce() (int, error) {
	if k.proc == nil {
		p, err := k.start()
		if err != nil {
			return 0, err
		}
		k.proc = p
	}
	return k.proc.Pid, nil
}

// stop ends a keeper this hive started, and reaps it.
func (k *keeper) stop() {
	if k == nil || k.proc == nil {
		return
	}
	_ = k.proc.Kill()
	_, _ = k.proc.Wait()
	k.proc = nil
}
