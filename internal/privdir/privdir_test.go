package privdir_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/privdir"
)

func TestMain(m *testing.M) { harness.Main(m) }

// dir returns a fresh private directory of the test and its Dir.
func dir(t *testing.T) (string, *privdir.Dir) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d")
	d, err := privdir.Open(p, privdir.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return p, d
}

// Nothing planted in the directory makes an open reach another file:
// links of either kind and FIFOs are refused, the target untouched.
func TestOpenRefusesPlantedFiles(t *testing.T) {
	p, d := dir(t)
	victim := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(victim, []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink(victim, filepath.Join(p, "sym.log")))
	must(t, os.Link(victim, filepath.Join(p, "hard.log")))
	must(t, syscall.Mkfifo(filepath.Join(p, "fifo.log"), 0o600))
	must(t, os.Mkdir(filepath.Join(p, "sub"), 0o700))
	for _, tc := range []struct{ name, want string }{
		{"sym.log", "symbolic link"},
		{"hard.log", "2 links"},
		{"fifo.log", "not a regular file"},
		{"sub", "not a regular file"},
		{"../d/sym.log", "not a file name"},
		{"..", "not a file name"},
		{"", "not a file name"},
	} {
		for _, flag := range []int{os.O_RDONLY, os.O_RDWR | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
			f, err := d.Open(tc.name, flag)
			if err == nil {
				f.Close()
				t.Fatalf("Open(%q, %#x) succeeded", tc.name, flag)
			}
			if !errors.Is(err, privdir.ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q, %#x): %v, want ErrUnsafe saying %q", tc.name, flag, err, tc.want)
			}
		}
	}
	// Create never opens what is there, link or not.
	for _, name := range []string{"sym.log", "hard.log", "fifo.log"} {
		if f, err := d.Create(name, os.O_WRONLY, 0o600); !errors.Is(err, fs.ErrExist) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Create(%q): %v, want ErrExist", name, err)
		}
	}
	// A rename over a hard link replaces the entry, not the file.
	must(t, d.WriteFile("hard.log", []byte("worker output\n"), 0o640))
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:0\n" {
		t.Fatalf("the link's target was written: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(p, "hard.log")); string(b) != "worker output\n" {
		t.Fatalf("hard.log = %q", b)
	}
}

// A file the daemon made is used as asked, and temporary files never
// collide.
func TestCreateOpenRenameRemove(t *testing.T) {
	p, d := dir(t)
	f, err := d.Create("a.log", os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("one\n")
	f.Close()
	if fi, _ := os.Stat(filepath.Join(p, "a.log")); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	f, err = d.Open("a.log", os.O_RDWR|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(filepath.Join(p, "a.log")); fi.Size() != 0 {
		t.Errorf("O_TRUNC left %d bytes", fi.Size())
	}
	seen := map[string]bool{}
	for range 20 {
		f, name, err := d.CreateTemp(".tmp-", 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if seen[name] || !strings.HasPrefix(name, ".tmp-") {
			t.Fatalf("temporary name %q", name)
		}
		seen[name] = true
	}
	must(t, d.Rename("a.log", "b.log"))
	if d.Exists("a.log") || !d.Exists("b.log") {
		t.Fatal("rename did not move the entry")
	}
	must(t, d.Remove("b.log"))
	must(t, d.Remove("b.log")) // gone already: no error
	names, err := d.Names()
	if err != nil || len(names) != 20 {
		t.Fatalf("Names: %d names, %v", len(names), err)
	}
}

// A directory someone else could change is refused when it is opened.
func TestOpenChecksTheDirectory(t *testing.T) {
	harness.RequireRoot(t) // to give a directory to another user
	base := t.TempDir()
	nobody := 65534
	mk := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		must(t, os.Mkdir(p, mode))
		must(t, os.Chmod(p, mode))
		must(t, os.Chown(p, uid, 0))
		return p
	}
	open := mk("open", 0o777, 0)
	sticky := mk("sticky", os.ModeSticky|0o777, 0)
	theirs := mk("theirs", 0o755, nobody)
	group := mk("group", 0o770, 0)
	readable := mk("readable", 0o755, 0)
	for _, tc := range []struct {
		path    string
		o       privdir.Options
		want    string // "" for success
		missing bool
	}{
		{path: open, want: "writable by group or others"},
		{path: group, want: "writable by group or others"},
		{path: theirs, want: "owned by uid 65534"},
		{path: filepath.Join(open, "logs"), o: privdir.Options{Create: true}, want: "above"},
		{path: filepath.Join(theirs, "logs"), want: "above", missing: true},
		{path: filepath.Join(sticky, "logs"), o: privdir.Options{Create: true}},
		{path: readable},
		{path: readable, o: privdir.Options{Private: true}, want: "open to group or others"},
		{path: filepath.Join(readable, "nope"), want: "no such file"},
	} {
		if tc.missing {
			must(t, os.Mkdir(tc.path, 0o700))
		}
		d, err := privdir.Open(tc.path, tc.o)
		if tc.want == "" {
			if err != nil {
				t.Errorf("Open(%s): %v", tc.path, err)
			} else {
				d.Close()
			}
			continue
		}
		if err == nil {
			d.Close()
			t.Errorf("Open(%s) succeeded, want %q", tc.path, tc.want)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s): %v, want %q", tc.path, err, tc.want)
		}
	}
}

// A file of another user in the daemon's own directory is not the
// daemon's to write.
func TestOpenRefusesAnotherUsersFile(t *testing.T) {
	harness.RequireRoot(t)
	p, d := dir(t)
	must(t, os.WriteFile(filepath.Join(p, "x.log"), nil, 0o644))
	must(t, os.Chown(filepath.Join(p, "x.log"), 65534, 65534))
	if f, err := d.Open("x.log", os.O_RDONLY); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		if f != nil {
			f.Close()
		}
		t.Fatalf("Open: %v, want refused for its owner", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
