//go:build !linux

package reread

import (
	"errors"
	"io"
	"os"
)

// handle is an os.File off Linux, where no collection pass reads kernel
// files.
type handle struct{ f *os.File }

func (h *handle) open() bool { return h.f != nil }

func (h *handle) openFile(_ *Dir, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	h.f = f
	return nil
}

func (h *handle) pread(b []byte) (int, error) {
	if h.f == nil {
		return 0, errClosed
	}
	n, err := h.f.ReadAt(b, 0)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (h *handle) close() error {
	err := h.f.Close()
	h.f = nil
	return err
}

// dirHandle opens nothing off Linux: files are opened by path.
type dirHandle struct{}

func (d *dirHandle) open(path string) error {
	_, err := os.Stat(path)
	return err
}

func (d *dirHandle) close() error { return nil }
