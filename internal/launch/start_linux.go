package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// Start starts the worker through the shim and returns its command, whose
// Process is the worker (the shim execs it in place) once Start returns
// nil. Nothing of the worker has run when Start fails.
func Start(s Spec) (*exec.Cmd, error) {
	if s.Exe == nil {
		return nil, errors.New("launch: no binary")
	}
	if len(s.Argv) == 0 {
		return nil, errors.New("launch: empty argv")
	}
	sc := shimConfig{Argv: s.Argv, Env: s.Env, User: s.User, JoinProcs: s.JoinProcs, ReadOnly: s.ReadOnly}
	marker := "1"
	if shimInMain.Load() {
		// Only a hive built with -cover (and told where its counters
		// go) gains by running its shims from main; any other runs them
		// from init, before the rest of the program initialises.
		if dir := os.Getenv("GOCOVERDIR"); dir != "" {
			marker, sc.CoverDir = "main", dir
		}
	}
	cfg, err := json.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	if len(cfg) > maxConfig {
		return nil, fmt.Errorf("launch: arguments and environment take %d bytes, at most %d", len(cfg), maxConfig)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("launch: status pipe: %w", err)
	}
	defer statusR.Close()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		return nil, fmt.Errorf("launch: config pipe: %w", err)
	}
	defer cfgW.Close()
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{shimArg0},
		// The shim's own loader sees nothing but the marker.
		Env:        []string{shimEnv + "=" + marker},
		Dir:        s.Dir,
		ExtraFiles: []*os.File{statusW, cfgR, s.Exe},
		// A worker outlives a hive restart: its own session keeps a Ctrl-C
		// in the hive's terminal from reaching it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	if s.Stderr != nil {
		cmd.Stderr = s.Stderr
	}
	if s.CgroupFD != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(s.CgroupFD.Fd())
	}
	err = cmd.Start()
	statusW.Close()
	cfgR.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Argv[0], err)
	}
	// The pipe holds 64 KiB; a larger config is written while the shim
	// reads, so a shim that dies early cannot block this write forever.
	werr := make(chan error, 1)
	go func() {
		_, err := cfgW.Write(cfg)
		cfgW.Close()
		werr <- err
	}()
	msg, _ := io.ReadAll(io.LimitReader(statusR, 4096))
	if len(msg) > 0 {
		_ = cmd.Wait()
		<-werr
		return nil, fmt.Errorf("start %s: %s", s.Argv[0], msg)
	}
	if err := <-werr; err != nil {
		// The shim exec'd without reading everything: impossible unless it
		// died; Wait tells.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start %s: hand over config: %w", s.Argv[0], err)
	}
	return cmd, nil
}
