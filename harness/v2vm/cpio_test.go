//go:build linux

package v2vm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// member is one entry read back from a newc archive.
type member struct {
	name       string
	mode       uint32
	uid, gid   uint32
	major, min uint32
	data       string
}

// readNewc parses a newc archive up to its trailer, checking the 4-byte
// alignment of every header and body as the kernel needs.
func readNewc(t *testing.T, b []byte) []member {
	t.Helper()
	var out []member
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at %d is not 4-byte aligned", off)
		}
		if len(b) < off+110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header at %d field %d: %v", off, i, err)
			}
			return uint32(v)
		}
		mode, uid, gid, size := field(1), field(2), field(3), field(6)
		namesize := int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		body := off + 110 + namesize
		body += (4 - body%4) % 4
		m := member{name: name, mode: mode, uid: uid, gid: gid, major: field(9), min: field(10),
			data: string(b[body : body+int(size)])}
		if name == "TRAILER!!!" {
			return out
		}
		out = append(out, m)
		off = body + int(size)
		off += (4 - off%4) % 4
	}
}

func TestCpioWritesNewc(t *testing.T) {
	var buf bytes.Buffer
	c := NewCpio(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.File("etc/passwd", 0o644, []byte("root:x:0:0::/root:/bin/sh\n")))
	must(c.File("/init", 0o755, []byte("#!/bin/sh\n")))
	must(c.Symlink("bin/sh", "/bin/busybox"))
	must(c.Dir("root", 0o700))
	must(c.Write(Entry{Name: "dev/console", Mode: modeChar | 0o600, RdevMajor: 5, RdevMinor: 1}, nil))
	must(c.File("empty", 0o600, nil))
	if err := c.File("etc/passwd", 0o644, nil); err == nil {
		t.Fatal("a name written twice was accepted")
	}
	for _, bad := range []string{"../x", "a/../../x", ".."} {
		if err := c.File(bad, 0o644, nil); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	must(c.Close())
	got := readNewc(t, buf.Bytes())
	var lines []string
	for _, m := range got {
		lines = append(lines, fmt.Sprintf("%s %o %d:%d %d,%d %q", m.name, m.mode, m.uid, m.gid, m.major, m.min, m.data))
	}
	want := []string{
		`etc 40755 0:0 0,0 ""`,
		`etc/passwd 100644 0:0 0,0 "root:x:0:0::/root:/bin/sh\n"`,
		`init 100755 0:0 0,0 "#!/bin/sh\n"`,
		`bin 40755 0:0 0,0 ""`,
		`bin/sh 120777 0:0 0,0 "/bin/busybox"`,
		`root 40700 0:0 0,0 ""`,
		`dev 40755 0:0 0,0 ""`,
		`dev/console 20600 0:0 5,1 ""`,
		`empty 100600 0:0 0,0 ""`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("archive:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if err := c.File("late", 0o644, nil); err == nil {
		t.Fatal("a write after Close was accepted")
	}
}

// TestCpioTreeExtracts packs a directory tree and unpacks it with GNU
// cpio, the reference reader of the format.
func TestCpioTreeExtracts(t *testing.T) {
	src := t.TempDir()
	for p, data := range map[string]string{"a/b/file": "hello", "a/odd": "12345", "top": ""} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("b/file", filepath.Join(src, "a/link")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	c := NewCpio(&buf)
	if err := c.Tree(src, "x/y"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	names := map[string]member{}
	for _, m := range readNewc(t, buf.Bytes()) {
		names[m.name] = m
	}
	for name, data := range map[string]string{"x/y/a/b/file": "hello", "x/y/a/odd": "12345", "x/y/top": "", "x/y/a/link": "b/file"} {
		if m, ok := names[name]; !ok || m.data != data {
			t.Errorf("%s: %+v, want data %q", name, m, data)
		}
	}
	if m := names["x/y/a/odd"]; m.mode != modeFile|0o640 {
		t.Errorf("x/y/a/odd mode %o, want %o", m.mode, modeFile|0o640)
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("GNU cpio not installed: the archive was only read back by this test's reader")
	}
	dst := t.TempDir()
	cmd := exec.Command("cpio", "-i", "-d", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dst, io.NopCloser(&buf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "x/y/a/b/file")); err != nil || string(b) != "hello" {
		t.Fatalf("extracted file: %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "x/y/a/link")); err != nil || l != "b/file" {
		t.Fatalf("extracted link: %q, %v", l, err)
	}
}

func TestPad(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 3, 2: 2, 3: 1, 4: 0, 111: 1} {
		if got := len(pad(n)); got != want {
			t.Errorf("pad(%d) = %d bytes, want %d", n, got, want)
		}
	}
}
