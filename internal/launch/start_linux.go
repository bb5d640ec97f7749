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
	cfg, marker, err := shimConfigOf(s)
	if err != nil {
		return nil, err
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
	cmd := shimCmd(s, marker, statusW, cfgR)
	err = cmd.Start()
	statusW.Close()
	cfgR.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Argv[0], err)
	}
	if err := handOver(cmd, cfg, cfgW, statusR); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Argv[0], err)
	}
	return cmd, nil
}

// shimConfigOf returns what the shim is told through its config pipe,
// and the marker that makes the new process a shim.
func shimConfigOf(s Spec) (cfg []byte, marker string, err error) {
	sc := shimConfig{Argv: s.Argv, Env: s.Env, User: s.User, JoinProcs: s.JoinProcs, ReadOnly: s.ReadOnly}
	marker = "1"
	if shimInMain.Load() {
		// Only a hive built with -cover (and told where its counters
		// go) gains by running its shims from main; any other runs them
		// from init, before the rest of the program initialises.
		if dir := os.Getenv("GOCOVERDIR"); dir != "" {
			marker, sc.CoverDir = "main", dir
		}
	}
	if cfg, err = json.Marshal(sc); err != nil {
		return nil, "", fmt.Errorf("launch: %w", err)
	}
	if len(cfg) > maxConfig {
		return nil, "", fmt.Errorf("launch: arguments and environment take %d bytes, at most %d", len(cfg), maxConfig)
	}
	return cfg, marker, nil
}

// shimCmd is the hive's own binary started as a shim, in its own session
// and, with a cgroup descriptor, straight into the worker's cgroup.
func shimCmd(s Spec, marker string, statusW, cfgR *os.File) *exec.Cmd {
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
	return cmd
}

// handOver writes the config to a started shim and waits for its word:
// nothing (the status pipe closed by exec) is success; a message is why
// the shim failed, and it is reaped.
func handOver(cmd *exec.Cmd, cfg []byte, cfgW, statusR *os.File) error {
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
		return errors.New(string(msg))
	}
	if err := <-werr; err != nil {
		// The shim exec'd without reading everything: impossible unless it
		// died; Wait tells.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("hand over config: %w", err)
	}
	return nil
}
