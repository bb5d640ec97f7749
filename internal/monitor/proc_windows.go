//go:build windows

package monitor

import (
	"os"
	"syscall"
)

func workerSysProcAttr() *syscall.SysProcAttr { return nil }

func exitStatus(ps *os.ProcessState) (code *int, sig *string) {
	c := ps.ExitCode()
	return &c, nil
}

// terminate kills: Windows has no SIGTERM for console-less processes.
func terminate(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

func killGroup(pid int) { _ = terminate(pid) }

func osPageSize() int { return 4096 }

// oNoFollow: Windows has no O_NOFOLLOW; links there need privileges.
const oNoFollow = 0

// ownerOf: Windows files have no uid; the directory's ACL is the
// operator's to set.
func ownerOf(os.FileInfo) (int, bool) { return 0, false }

// oNonBlock: Windows has no FIFOs to wait on in a log directory.
const oNonBlock = 0

func setBlocking(*os.File) error { return nil }
