//go:build windows

package launch

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
