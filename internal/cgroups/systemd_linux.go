package cgroups

import (
	"context"
	"fmt"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Systemd makes the delegated scope the workers' tree lives in, on a host
// whose init is systemd: runc, containerd and podman ask systemd for their
// cgroups the same way, as systemd owns the cgroup tree and may rewrite
// what it did not make.
type Systemd interface {
	// Scope returns the cgroup (below the mount root) of the scope unit
	// named unit in slice, delegated to the caller. When it is not
	// running, it is started holding the process keeper starts.
	Scope(ctx context.Context, slice, unit string, keeper func() (int, error)) (string, error)
}

// systemdDBus is systemd's own API: its private socket (root), else the
// system bus.
type systemdDBus struct{}

func (systemdDBus) Scope(ctx context.Context, slice, unit string, keeper func() (int, error)) (string, error) {
	conn, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		var berr error
		if conn, berr = sd.NewSystemConnectionContext(ctx); berr != nil {
			return "", fmt.Errorf("connect to systemd: %w; over the system bus: %w", err, berr)
		}
	}
	defer conn.Close()
	if cg, ok := runningScope(ctx, conn, unit); ok {
		return cg, nil
	}
	// A scope of that name still stopping (its last process just ended:
	// an earlier hive's keeper, say, at a restart) cannot be started
	// again until it is gone; one that ended (failed, say) stays loaded
	// until reset.
	if err := waitInactive(ctx, conn, unit); err != nil {
		return "", err
	}
	_ = conn.ResetFailedUnitContext(ctx, unit)
	pid, err := keeper()
	if err != nil {
		return "", fmt.Errorf("start its keeper: %w", err)
	}
	props := []sd.Property{
		sd.PropDescription("rbee-hive workers: one cgroup per worker below it, and the keeper process that holds the scope"),
		sd.PropSlice(slice),
		sd.PropPids(uint32(pid)),
		prop("Delegate", true),
		prop("CPUAccounting", true),
		prop("MemoryAccounting", true),
		prop("IOAccounting", true),
		prop("TasksAccounting", true),
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
		return "", fmt.Errorf("start %s: %w", unit, err)
	}
	select {
	case r := <-done:
		if r != "done" {
			return "", fmt.Errorf("start %s: job %s", unit, r)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("start %s: %w", unit, ctx.Err())
	}
	cg, ok := runningScope(ctx, conn, unit)
	if !ok {
		return "", fmt.Errorf("start %s: it runs, but systemd names no cgroup for it", unit)
	}
	return cg, nil
}

// waitInactive waits, polling, while unit is activating, deactivating or
// reloading, so that it can be started afresh.
func waitInactive(ctx context.Context, conn *sd.Conn, unit string) error {
	for {
		st, err := conn.ListUnitsByNamesContext(ctx, []string{unit})
		if err != nil {
			return fmt.Errorf("state of %s: %w", unit, err)
		}
		if len(st) != 1 {
			return nil
		}
		switch st[0].ActiveState {
		case "activating", "deactivating", "reloading":
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s stays %s: %w", unit, st[0].ActiveState, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runningScope returns the cgroup of unit when it runs.
func runningScope(ctx context.Context, conn *sd.Conn, unit string) (string, bool) {
	st, err := conn.ListUnitsByNamesContext(ctx, []string{unit})
	if err != nil || len(st) != 1 || st[0].ActiveState != "active" {
		return "", false
	}
	p, err := conn.GetUnitTypePropertyContext(ctx, unit, "Scope", "ControlGroup")
	if err != nil {
		return "", false
	}
	cg, ok := p.Value.Value().(string)
	if !ok || !strings.HasPrefix(cg, "/") {
		return "", false
	}
	return cg, true
}

func prop(name string, v any) sd.Property {
	return sd.Property{Name: name, Value: godbus.MakeVariant(v)}
}
