package v2vm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Rootfs is a Debian root file system made with debootstrap, booted whole
// as an initramfs (no disk: the cloud kernel's virtio_blk is a module)
// with systemd as PID 1.
type Rootfs struct {
	// Suite is the Debian release, e.g. bookworm.
	Suite string
	// Mirror is the Debian mirror (see Mirror).
	Mirror string
	// Include lists the packages added to debootstrap's minbase.
	Include []string
	// Backports lists packages then installed from Suite-backports
	// (systemd 254 on bookworm); none when empty.
	Backports []string
}

// trimVersion changes when what trimRootfs removes changes, so that the
// cache key does.
const trimVersion = "trim-1"

// Key names the cached image: a digest of everything that goes into it.
func (r Rootfs) Key(debootstrapVersion string) string {
	inc := slices.Clone(r.Include)
	slices.Sort(inc)
	bpo := slices.Clone(r.Backports)
	slices.Sort(bpo)
	in := fmt.Sprintf("debootstrap %s --variant=minbase --include=%s %s %s\nbackports: %s\n%s\n",
		debootstrapVersion, strings.Join(inc, ","), r.Suite, r.Mirror, strings.Join(bpo, ","), trimVersion)
	sum := sha256.Sum256([]byte(in))
	name := r.Suite
	if len(bpo) > 0 {
		name += "-backports"
	}
	return name + "-" + hex.EncodeToString(sum[:8])
}

// RootfsImage is a cached root file system image.
type RootfsImage struct {
	// Path is the zstd-compressed newc archive.
	Path string
	// Systemd is the systemd version in it, from dpkg's status.
	Systemd string
}

// BuildRootfs returns the image of r, from cacheDir when one with the same
// inputs was built before. Building runs debootstrap (as root: it needs
// chroot and device nodes), installs the backports, removes apt's lists and
// caches, documentation, man pages and locales, and packs the tree.
func BuildRootfs(ctx context.Context, cacheDir string, r Rootfs, log io.Writer) (RootfsImage, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "debootstrap").Output()
	if err != nil {
		return RootfsImage{}, fmt.Errorf("debootstrap is not installed (apt-get install debootstrap; .ci/deps does): %w", err)
	}
	dir := filepath.Join(cacheDir, "rootfs", r.Key(string(out)))
	img := RootfsImage{Path: filepath.Join(dir, "rootfs.cpio.zst")}
	err = cached(dir, func(tmp string) error {
		tree := filepath.Join(tmp, "tree")
		defer removeTree(tree)
		if err := debootstrap(ctx, tree, r, log); err != nil {
			return err
		}
		ver, err := dpkgVersion(tree, "systemd")
		if err != nil {
			return err
		}
		if err := trimRootfs(tree); err != nil {
			return err
		}
		fmt.Fprintf(log, "v2vm: packing %s (systemd %s)\n", filepath.Base(dir), ver)
		if err := WriteInitramfs(filepath.Join(tmp, "rootfs.cpio.zst"), Zstd, func(c *Cpio) error { return c.Tree(tree, "") }); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "systemd-version"), []byte(ver), 0o644)
	})
	if err != nil {
		return img, err
	}
	v, err := os.ReadFile(filepath.Join(dir, "systemd-version"))
	img.Systemd = string(v)
	return img, err
}

func debootstrap(ctx context.Context, tree string, r Rootfs, log io.Writer) error {
	fmt.Fprintf(log, "v2vm: debootstrap %s from %s (about a minute)\n", r.Suite, r.Mirror)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(r.Include, ","), r.Suite, tree, r.Mirror)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s %s: %w", r.Suite, r.Mirror, err)
	}
	if len(r.Backports) == 0 {
		return nil
	}
	list := fmt.Sprintf("deb %s %s-backports main\n", r.Mirror, r.Suite)
	if err := os.WriteFile(filepath.Join(tree, "etc/apt/sources.list.d/backports.list"), []byte(list), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(log, "v2vm: installing %s from %s-backports\n", strings.Join(r.Backports, " "), r.Suite)
	for _, args := range [][]string{
		{"apt-get", "update", "-q"},
		append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends", "-t", r.Suite + "-backports"}, r.Backports...),
	} {
		cmd := exec.CommandContext(ctx, "chroot", append([]string{tree}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("chroot %s: %w (is %s-backports on the mirror?)", strings.Join(args, " "), err, r.Suite)
		}
	}
	return nil
}

// trimRootfs removes what a VM that runs one test needs none of.
func trimRootfs(tree string) error {
	for _, pattern := range []string{
		"var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
		"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
		"var/log/*.log", "etc/machine-id",
	} {
		matches, err := filepath.Glob(filepath.Join(tree, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	// An empty machine-id: systemd makes one at boot, for this boot only.
	return os.WriteFile(filepath.Join(tree, "etc/machine-id"), nil, 0o444)
}

// dpkgVersion reads pkg's installed version from the tree's dpkg status.
func dpkgVersion(tree, pkg string) (string, error) {
	f, err := os.Open(filepath.Join(tree, "var/lib/dpkg/status"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			in = false
		case strings.HasPrefix(line, "Package: "):
			in = strings.TrimPrefix(line, "Package: ") == pkg
		case in && strings.HasPrefix(line, "Version: "):
			return strings.TrimPrefix(line, "Version: "), nil
		}
	}
	return "", fmt.Errorf("%s is not installed in %s", pkg, tree)
}

// removeTree removes a debootstrap tree, first unmounting anything an
// interrupted debootstrap left mounted below it (its /proc, /sys), so
// that removing the tree cannot reach into the host's.
func removeTree(tree string) {
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var below []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(f[4], tree+"/") {
				below = append(below, f[4])
			}
		}
		slices.Sort(below)
		for i := len(below) - 1; i >= 0; i-- {
			_ = unix.Unmount(below[i], unix.MNT_DETACH)
		}
	}
	os.RemoveAll(tree)
}
