package gpufake

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Files next to the fake's binary (or named by the environment) that drive
// it: the scenario, and a log with one line per invocation.
const (
	ScenarioFile  = "scenario.json"
	InvocationLog = "invocations.log"
	// EnvScenario and EnvLog name the scenario and the invocation log
	// when they are not next to the binary.
	EnvScenario = "RBEE_FAKE_SMI_SCENARIO"
	EnvLog      = "RBEE_FAKE_SMI_LOG"
	envChild    = "RBEE_FAKE_SMI_HANG_CHILD"
)

// Main runs the fake nvidia-smi with args (without argv[0]) and returns
// its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if os.Getenv(envChild) == "1" {
		hang()
	}
	dir := "."
	if exe, err := os.Executable(); err == nil {
		dir = filepath.Dir(exe)
	}
	scPath := or(os.Getenv(EnvScenario), filepath.Join(dir, ScenarioFile))
	logPath := or(os.Getenv(EnvLog), filepath.Join(dir, InvocationLog))
	if f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintln(f, strings.Join(args, " "))
		f.Close()
	}
	s, err := Load(scPath)
	if err != nil {
		fmt.Fprintln(stderr, "fake nvidia-smi:", err)
		return 2
	}
	kind, render, err := dispatch(args, s)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 2
	}
	if len(s.Only) == 0 || slices.Contains(s.Only, kind) {
		if s.DelayMS > 0 {
			time.Sleep(time.Duration(s.DelayMS) * time.Millisecond)
		}
		switch {
		case s.Hang:
			if s.HangChild {
				child := exec.Command("/proc/self/exe")
				child.Env = append(os.Environ(), envChild+"=1")
				_ = child.Start()
			}
			hang()
		case s.NoDevices:
			fmt.Fprintln(stdout, "No devices were found")
			return 6
		case s.ExitCode != 0:
			fmt.Fprintln(stdout, or(s.Message, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."))
			return s.ExitCode
		case s.Garbage:
			fmt.Fprintln(stdout, "\x00\x01garbage, not, csv ,,,\n#!??\nlots of 12 nonsense MiB")
			return 0
		}
	}
	var b bytes.Buffer
	render(&b)
	_, _ = stdout.Write(b.Bytes())
	return 0
}

// dispatch recognises the invocations rbee (and a person) uses.
func dispatch(args []string, s Scenario) (string, func(*bytes.Buffer), error) {
	units := slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--format=") && !strings.Contains(a, "nounits")
	})
	switch {
	case len(args) == 0:
		return "table", func(b *bytes.Buffer) { Table(b, s, time.Now()) }, nil
	case args[0] == "-L":
		return "list", func(b *bytes.Buffer) { List(b, s) }, nil
	case args[0] == "pmon":
		return "pmon", func(b *bytes.Buffer) { Pmon(b, s) }, nil
	case strings.HasPrefix(args[0], "--query-gpu="):
		return "query-gpu", func(b *bytes.Buffer) { QueryGPU(b, s, units) }, nil
	case strings.HasPrefix(args[0], "--query-compute-apps="):
		return "query-compute-apps", func(b *bytes.Buffer) { ComputeApps(b, s, units) }, nil
	}
	return "", nil, fmt.Errorf("fake nvidia-smi: unsupported arguments %q", args)
}

// hang never returns and survives SIGTERM, like a wedged nvidia-smi.
func hang() {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for {
		time.Sleep(time.Hour)
	}
}
