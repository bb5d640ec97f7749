package v2vm

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Kernel is a kernel image taken out of a Debian package, with the
// modules the VM loads.
type Kernel struct {
	// Vmlinuz is the path of the compressed kernel image.
	Vmlinuz string
	// Release is the kernel's release, e.g. 6.1.0-57-cloud-amd64.
	Release string
	// Package names the package and version it came from.
	Package string
	// Modules maps a module's file name (loop.ko) to its path.
	Modules map[string]string
}

// KernelPackage is the Debian metapackage whose dependency is the kernel
// the VM boots: the cloud flavour has cgroups, memcg, CFS bandwidth, io,
// pids, devtmpfs, initrd and the 8250 console built in, and boots in ~3 s
// under TCG.
const KernelPackage = "linux-image-cloud-amd64"

// kernelModules are the modules taken from the kernel package, by their
// path below lib/modules/<release>/kernel/: loop gives the VM a block
// device, so that block I/O is counted (tmpfs counts none).
var kernelModules = []string{"drivers/block/loop.ko"}

// FetchKernel returns Debian's cloud kernel, from cacheDir when this
// version was fetched before. It resolves KernelPackage to the versioned
// package it depends on with apt-cache, downloads that with apt-get
// download (running apt-get update first when apt has no lists, or when
// its lists name a version the mirror no longer has), and takes only
// boot/vmlinuz-* and the modules out of it: nothing is installed.
func FetchKernel(ctx context.Context, cacheDir string, log io.Writer) (Kernel, error) {
	var k Kernel
	err := retryAfterUpdate(ctx, log, func() (err error) {
		k, err = fetchKernel(ctx, cacheDir, log)
		return err
	})
	return k, err
}

func fetchKernel(ctx context.Context, cacheDir string, log io.Writer) (Kernel, error) {
	meta, err := aptShow(ctx, KernelPackage, log)
	if err != nil {
		return Kernel{}, err
	}
	dep, err := versionedDep(meta["Depends"], "linux-image-")
	if err != nil {
		return Kernel{}, fmt.Errorf("%s %s: %w", KernelPackage, meta["Version"], err)
	}
	fields, err := aptShow(ctx, dep, log)
	if err != nil {
		return Kernel{}, err
	}
	version := fields["Version"]
	release := strings.TrimPrefix(dep, "linux-image-")
	dir := filepath.Join(cacheDir, "kernel", safeName(dep+"_"+version))
	k := Kernel{Vmlinuz: filepath.Join(dir, "vmlinuz"), Release: release, Package: dep + " " + version, Modules: map[string]string{}}
	for _, m := range kernelModules {
		k.Modules[path.Base(m)] = filepath.Join(dir, path.Base(m))
	}
	err = cached(dir, func(tmp string) error {
		fmt.Fprintf(log, "v2vm: downloading %s %s\n", dep, version)
		deb, err := aptDownload(ctx, tmp, dep, version)
		if err != nil {
			return err
		}
		want := map[string]string{"./boot/vmlinuz-" + release: "vmlinuz"}
		for _, m := range kernelModules {
			want["./lib/modules/"+release+"/kernel/"+m] = path.Base(m)
		}
		if err := debExtract(ctx, deb, tmp, want); err != nil {
			return err
		}
		return os.Remove(deb)
	})
	return k, err
}

// FetchBusybox returns the path of busybox-static's busybox, from
// cacheDir when this version was fetched before.
func FetchBusybox(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	var p string
	err := retryAfterUpdate(ctx, log, func() (err error) {
		p, err = fetchBusybox(ctx, cacheDir, log)
		return err
	})
	return p, err
}

func fetchBusybox(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	const pkg = "busybox-static"
	fields, err := aptShow(ctx, pkg, log)
	if err != nil {
		return "", err
	}
	version := fields["Version"]
	dir := filepath.Join(cacheDir, "busybox", safeName(version))
	err = cached(dir, func(tmp string) error {
		fmt.Fprintf(log, "v2vm: downloading %s %s\n", pkg, version)
		deb, err := aptDownload(ctx, tmp, pkg, version)
		if err != nil {
			return err
		}
		if err := debExtract(ctx, deb, tmp, map[string]string{"./bin/busybox": "busybox"}); err != nil {
			return err
		}
		return os.Remove(deb)
	})
	return filepath.Join(dir, "busybox"), err
}

// retryAfterUpdate runs f, and once more after apt-get update when it
// fails: apt's lists may be older than the mirror, which then no longer
// has the version they name (a superseded security kernel).
func retryAfterUpdate(ctx context.Context, log io.Writer, f func() error) error {
	err := f()
	if err == nil || ctx.Err() != nil {
		return err
	}
	fmt.Fprintf(log, "v2vm: %v\nv2vm: running apt-get update and trying again\n", err)
	if b, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
		return fmt.Errorf("%w (and apt-get update: %v: %s)", err, uerr, b)
	}
	return f()
}

// cached makes dir by calling fill on a temporary directory beside it,
// renamed into place once fill succeeds, unless dir exists already. A
// failed or interrupted fill leaves nothing that reads as a cache hit.
func cached(dir string, fill func(tmp string) error) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-"+filepath.Base(dir)+"-")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// aptShow returns the fields of the version of pkg apt would install.
func aptShow(ctx context.Context, pkg string, log io.Writer) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		// A fresh machine or container may have no package lists yet.
		fmt.Fprintf(log, "v2vm: apt-cache knows no %s; running apt-get update\n", pkg)
		if b, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return nil, fmt.Errorf("apt-get update: %w\n%s", uerr, b)
		}
		out, err = exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	}
	if err != nil {
		return nil, fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	fields := parseControl(out)
	if fields["Version"] == "" {
		return nil, fmt.Errorf("apt-cache show %s: no Version field", pkg)
	}
	return fields, nil
}

// parseControl parses the first stanza of Debian control data (apt-cache
// show, dpkg-deb -f), joining continuation lines.
func parseControl(b []byte) map[string]string {
	fields := map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(fields) > 0 {
				break
			}
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}

// versionedDep returns the first package of a Depends field whose name
// starts with prefix: "linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)"
// gives linux-image-6.1.0-57-cloud-amd64.
func versionedDep(depends, prefix string) (string, error) {
	for _, alt := range strings.FieldsFunc(depends, func(r rune) bool { return r == ',' || r == '|' }) {
		name, _, _ := strings.Cut(strings.TrimSpace(alt), " ")
		name, _, _ = strings.Cut(name, ":")
		if strings.HasPrefix(name, prefix) {
			return name, nil
		}
	}
	return "", fmt.Errorf("no dependency named %s* in Depends %q", prefix, depends)
}

// aptDownload downloads pkg at version into dir and returns the .deb.
func aptDownload(ctx context.Context, dir, pkg, version string) (string, error) {
	// Sandbox::User=root: the _apt user may not write dir (apt warns and
	// downloads unsandboxed otherwise).
	cmd := exec.CommandContext(ctx, "apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", pkg+"="+version)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s=%s: %w\n%s", pkg, version, err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s=%s: want one %s_*.deb in %s, found %d", pkg, version, pkg, dir, len(debs))
	}
	return debs[0], nil
}

// debExtract copies the members of a .deb's data archive named in want
// (by their path in the archive, "./boot/vmlinuz-…") to dir under the name
// want gives each, without installing anything.
func debExtract(ctx context.Context, deb, dir string, want map[string]string) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	found := map[string]bool{}
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", deb, err)
		}
		name, ok := want[h.Name]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		if err := writeFile(filepath.Join(dir, name), tr, 0o755); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
		found[h.Name] = true
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, stderr.Bytes())
	}
	for member := range want {
		if !found[member] {
			return fmt.Errorf("%s has no %s", filepath.Base(deb), member)
		}
	}
	return nil
}

func writeFile(p string, r io.Reader, perm os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9.+_-]`)

// safeName makes a package version usable as a directory name.
func safeName(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

// Mirror returns the Debian mirror apt uses on this machine for suite:
// the URI of the first "deb" source in /etc/apt/sources.list and
// sources.list.d (one-line and deb822 forms) that lists suite.
func Mirror(suite string) (string, error) {
	var files []string
	if _, err := os.Stat("/etc/apt/sources.list"); err == nil {
		files = append(files, "/etc/apt/sources.list")
	}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	for _, f := range files {
		var uri string
		switch {
		case strings.HasSuffix(f, ".sources"):
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			uri = mirrorDeb822(b, suite)
		case strings.HasSuffix(f, ".list") || f == "/etc/apt/sources.list":
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			uri = mirrorOneLine(b, suite)
		}
		if uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no deb source for %s in /etc/apt/sources.list or sources.list.d (set RBEE_V2_MIRROR)", suite)
}

// mirrorOneLine finds suite in one-line sources ("deb [opts] URI suite
// components...").
func mirrorOneLine(b []byte, suite string) string {
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == suite {
			return f[0]
		}
	}
	return ""
}

// mirrorDeb822 finds suite in deb822 sources (stanzas with Types, URIs,
// Suites).
func mirrorDeb822(b []byte, suite string) string {
	for _, stanza := range strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n\n") {
		var types, uris, suites []string
		enabled := true
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "types":
				types = strings.Fields(v)
			case "uris":
				uris = strings.Fields(v)
			case "suites":
				suites = strings.Fields(v)
			case "enabled":
				enabled = strings.TrimSpace(v) != "no"
			}
		}
		if enabled && len(uris) > 0 && slices.Contains(types, "deb") && slices.Contains(suites, suite) {
			return uris[0]
		}
	}
	return ""
}
