// Package v2vm is rbee's cgroup v2 lane: it runs the cgroup-touching
// test suites and the hive's restart on a real cgroup v2 kernel in a
// small qemu VM, from a machine that has none (the CI machines run a
// hybrid v1 layout, and their paravirtual KVM cannot run a stock kernel,
// so qemu runs under TCG). `go tool mage test:v2` runs it; the command is
// ./cmd.
//
// The pieces, each usable alone:
//
//   - FetchKernel and FetchBusybox take Debian's cloud kernel and
//     busybox-static out of their packages (apt-get download, dpkg-deb;
//     nothing installed), cached by version;
//   - Cpio writes the kernel's initramfs format (newc), WriteInitramfs
//     compresses it, BuildRootfs makes a cached Debian root file system
//     with debootstrap to boot whole with systemd as PID 1;
//   - Boot runs qemu and hands back the serial console line by line;
//   - Report reads the result markers (MarkerPrefix) and the go test
//     output the VM prints, and says which step, package and test failed
//     and how.
//
// The steps (Steps, RBEE_V2_STEPS selects): a and b run the test binaries
// of Suites as root in two placements, alone in a cgroup below the root
// and beside another process in a session scope; c restarts a hive into
// its unit's cgroup the way systemd does; systemd and systemd-bpo install
// deploy/systemd/rbee-hive.service under systemd 252 and 254+ and restart
// it. Inside the VMs, shell scripts (vm/, embedded) do the work and print
// the markers. See ../shared/recipes/cgroup-v2-vm.md for what was measured
// on this machine.
package v2vm
