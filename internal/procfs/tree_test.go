package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A process tree started here is found whole: a shell, its two children
// and a grandchild, from the children files and from the stat scan alike.
func TestTreeOfARealProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc (Linux); this is " + runtime.GOOS)
	}
	cmd := exec.Command("sh", "-c", "sleep 60 & (sleep 60 & wait) & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The whole group: the sleeps too.
		cmd.Process.Kill()
		cmd.Wait()
	})
	var got []int
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if got, err = Default.Tree(cmd.Process.Pid, 100); err != nil {
			t.Fatal(err)
		}
		// sh, sleep, the subshell and its sleep.
		if len(got) == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 4 || got[0] != cmd.Process.Pid {
		t.Fatalf("Tree(%d) = %v, want the shell and 3 descendants", cmd.Process.Pid, got)
	}
	scan, err := Default.treeByScan(cmd.Process.Pid, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(scan, got) {
		t.Fatalf("treeByScan = %v, Tree = %v", scan, got)
	}
	if short, _ := Default.Tree(cmd.Process.Pid, 2); len(short) != 2 {
		t.Fatalf("Tree bounded at 2 = %v", short)
	}
	for _, p := range got {
		exec.Command("kill", "-9", strconv.Itoa(p)).Run()
	}
}

// Without children files (a kernel without CONFIG_PROC_CHILDREN), the
// tree comes from every process's parent pid.
func TestTreeWithoutChildrenFiles(t *testing.T) {
	root := t.TempDir()
	tail := " 0 0 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 100 0 10 0"
	for _, p := range []struct{ pid, ppid int }{{1, 0}, {10, 1}, {11, 10}, {12, 10}, {13, 12}, {20, 1}} {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.MkdirAll(filepath.Join(dir, "task", strconv.Itoa(p.pid)), 0o755); err != nil {
			t.Fatal(err)
		}
		line := strconv.Itoa(p.pid) + " (p) S " + strconv.Itoa(p.ppid) + tail
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fsys := &FS{Root: root}
	got, err := fsys.Tree(10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(got, []int{10, 11, 12, 13}) || got[0] != 10 {
		t.Fatalf("Tree(10) = %v", got)
	}
	if _, err := fsys.Tree(99, 100); err == nil {
		t.Fatal("Tree of a missing pid succeeded")
	}
}

func TestParsePidList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{"", nil, false},
		{"12 13 \n", []int{12, 13}, false},
		{"12 x", nil, true},
		{"0", nil, true},
		{"-4", nil, true},
	} {
		got, err := ParsePidList([]byte(tc.in), nil)
		if (err != nil) != tc.bad || !tc.bad && !slices.Equal(got, tc.want) {
			t.Errorf("ParsePidList(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func FuzzParsePidList(f *testing.F) {
	f.Add([]byte("12 13 \n"))
	f.Add([]byte("1 -2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParsePidList(b, nil)
		if err != nil {
			return
		}
		if len(got) != len(strings.Fields(string(b))) {
			t.Fatalf("ParsePidList(%q) = %v", b, got)
		}
		for _, p := range got {
			if p <= 0 {
				t.Fatalf("ParsePidList(%q) = %v: a pid <= 0", b, got)
			}
		}
	})
}

func sameSet(a, b []int) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}
