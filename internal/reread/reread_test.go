package reread

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileSeesNewContentsAndGrows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path}
	defer f.Close()
	var buf []byte
	if b, err := f.Read(&buf); err != nil || string(b) != "one" {
		t.Fatalf("first read %q %v", b, err)
	}
	big := strings.Repeat("x", 10000) // past the 4 KiB first buffer
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := f.Read(&buf); err != nil || string(b) != big {
		t.Fatalf("second read: %d bytes, %v", len(b), err)
	}
	if _, err := (&File{Path: path + ".missing"}).Read(&buf); err == nil {
		t.Fatal("read of a missing file succeeded")
	}
}

func TestReopenFollowsReplacedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, []byte("old"), 0o644)
	kept, reopened := &File{Path: path}, &File{Path: path, Reopen: true}
	defer kept.Close()
	defer reopened.Close()
	var buf []byte
	kept.Read(&buf)
	reopened.Read(&buf)
	// Replace the file: a kept descriptor still reads the old inode.
	os.WriteFile(filepath.Join(dir, "g"), []byte("new"), 0o644)
	os.Rename(filepath.Join(dir, "g"), path)
	if b, _ := kept.Read(&buf); string(b) != "old" {
		t.Fatalf("kept descriptor read %q", b)
	}
	if b, _ := reopened.Read(&buf); string(b) != "new" {
		t.Fatalf("reopening read %q, want the new contents", b)
	}
}
