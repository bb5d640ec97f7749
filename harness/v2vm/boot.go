package v2vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// BootConfig describes one VM run. The VM has no network card and no
// disk: everything it needs is in its initramfs, and all it says comes
// back on its serial console.
type BootConfig struct {
	// Kernel is the kernel image (bzImage).
	Kernel string
	// Initrd is the initramfs: compressed cpio archives, one after the
	// other (the kernel unpacks each in turn, later files replacing
	// earlier ones).
	Initrd string
	// Append is the kernel command line; console=ttyS0 is added.
	Append string
	// MemoryMB is the VM's memory; 0 means 2048.
	MemoryMB int
	// CPUs is the VM's processor count; 0 means 2.
	CPUs int
	// Accel is qemu's -accel; "" means tcg. (kvm needs a KVM that runs a
	// stock kernel, which this project's machines do not have.)
	Accel string
	// Timeout bounds the whole run; 0 means none beyond ctx.
	Timeout time.Duration
	// Line is called with each console line, "\r" stripped, in order.
	Line func(string)
	// Stderr takes what qemu itself prints; nil discards it.
	Stderr io.Writer
}

// Qemu is the emulator Boot runs.
const Qemu = "qemu-system-x86_64"

// QemuArgs returns the emulator's command line for cfg: TCG, since this
// machine's paravirtual KVM cannot run a stock kernel (see
// ../shared/recipes/cgroup-v2-vm.md), and no reboot, so that a power-off
// or a panic (panic=-1) ends qemu.
func QemuArgs(cfg BootConfig) []string {
	mem, cpus := cfg.MemoryMB, cfg.CPUs
	if mem == 0 {
		mem = 2048
	}
	if cpus == 0 {
		cpus = 2
	}
	accel := cfg.Accel
	if accel == "" {
		accel = "tcg"
	}
	return []string{"-accel", accel, "-cpu", "max", "-m", fmt.Sprint(mem), "-smp", fmt.Sprint(cpus),
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", cfg.Kernel, "-initrd", cfg.Initrd,
		"-append", strings.TrimSpace("console=ttyS0 " + cfg.Append)}
}

// ErrTimeout is returned by Boot when the VM ran past its timeout.
var ErrTimeout = errors.New("the VM ran past its timeout and was killed")

// Boot runs the VM until it powers off, passing each console line to
// cfg.Line. It returns ErrTimeout (wrapped) when the VM outlived
// cfg.Timeout, ctx's error when ctx ended, or qemu's failure.
func Boot(ctx context.Context, cfg BootConfig) error {
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, Qemu, QemuArgs(cfg)...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = nil
	if cfg.Stderr != nil {
		cmd.Stderr = cfg.Stderr
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Qemu, err)
	}
	readLines(out, cfg.Line)
	err = cmd.Wait()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w (%v)", ErrTimeout, cfg.Timeout)
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("%s: %w", Qemu, err)
	}
	return nil
}

// escapes matches terminal control sequences (SeaBIOS clears the screen).
var escapes = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_]|c)`)

// readLines calls line with each line of r, "\r" and terminal control
// sequences removed, until EOF.
func readLines(r io.Reader, line func(string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := br.ReadString('\n')
		if s != "" && line != nil {
			line(escapes.ReplaceAllString(strings.TrimRight(strings.ReplaceAll(s, "\r", ""), "\n"), ""))
		}
		if err != nil {
			return
		}
	}
}

// ConcatFiles writes the files one after the other to out, each padded
// to 4 bytes, as the kernel reads concatenated initramfs archives.
func ConcatFiles(out string, files ...string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	var n int64
	for _, p := range files {
		in, err := os.Open(p)
		if err != nil {
			f.Close()
			return err
		}
		m, err := io.Copy(f, in)
		in.Close()
		if err != nil {
			f.Close()
			return err
		}
		n += m
		if r := n % 4; r != 0 {
			if _, err := f.Write(make([]byte, 4-r)); err != nil {
				f.Close()
				return err
			}
			n += 4 - r
		}
	}
	return f.Close()
}
