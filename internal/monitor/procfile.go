package monitor

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// procfile is a /proc file re-read through one descriptor with pread.
type procfile struct {
	path string
	f    *os.File
}

func (p *procfile) read(buf *[]byte) ([]byte, error) {
	if p.f == nil {
		f, err := os.Open(p.path)
		if err != nil {
			return nil, err
		}
		p.f = f
	}
	if len(*buf) < 1024 {
		*buf = make([]byte, 1024)
	}
	n, err := p.f.ReadAt(*buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", p.path, err)
	}
	return (*buf)[:n], nil
}

func (p *procfile) close() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}
