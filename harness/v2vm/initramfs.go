package v2vm

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Compression is how an initramfs archive is compressed; the Debian
// kernels unpack both (CONFIG_RD_GZIP, CONFIG_RD_ZSTD).
type Compression int

const (
	// Gzip at its fastest level: for the small archives made on every run.
	Gzip Compression = iota
	// Zstd: for the large, cached root file systems.
	Zstd
)

// WriteInitramfs writes a compressed newc archive to path, its entries
// added by fill; nothing is left at path when it fails.
func WriteInitramfs(path string, c Compression, fill func(*Cpio) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	buf := bufio.NewWriterSize(f, 1<<20)
	var zw io.WriteCloser
	switch c {
	case Gzip:
		zw, err = gzip.NewWriterLevel(buf, gzip.BestSpeed)
	case Zstd:
		zw, err = zstd.NewWriter(buf, zstd.WithEncoderLevel(zstd.SpeedDefault))
	default:
		err = fmt.Errorf("unknown compression %d", c)
	}
	if err != nil {
		return err
	}
	cp := NewCpio(zw)
	if err := fill(cp); err != nil {
		return fmt.Errorf("initramfs %s: %w", path, err)
	}
	if err := cp.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := buf.Flush(); err != nil {
		return err
	}
	return f.Close()
}
