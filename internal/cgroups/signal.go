package cgroups

import "syscall"

// Signal is a process signal; it exists so callers off Linux compile.
type Signal = syscall.Signal
