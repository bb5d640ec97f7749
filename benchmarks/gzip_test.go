package benchmarks

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/rbee-dev/rbee/internal/apiclient"
)

// BenchmarkHeartbeatInflate inflates one steady 100-worker heartbeat as
// the queen receives it (compressed by apiclient.Gzip, as a hive does), with
// the standard library and with klauspost/compress, which the queen uses.
func BenchmarkHeartbeatInflate(b *testing.B) {
	_, body := steadyHeartbeat(b)
	z, err := apiclient.Gzip(body)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2*len(body))
	run := func(b *testing.B, open func(io.Reader) (io.ReadCloser, error)) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			zr, err := open(bytes.NewReader(z))
			if err != nil {
				b.Fatal(err)
			}
			w := bytes.NewBuffer(buf[:0])
			if _, err := w.ReadFrom(zr); err != nil || w.Len() != len(body) {
				b.Fatalf("%d bytes, %v", w.Len(), err)
			}
			zr.Close()
		}
	}
	b.Run("compress-gzip", func(b *testing.B) {
		run(b, func(r io.Reader) (io.ReadCloser, error) { return stdgzip.NewReader(r) })
	})
	b.Run("klauspost", func(b *testing.B) {
		run(b, func(r io.Reader) (io.ReadCloser, error) { return kgzip.NewReader(r) })
	})
}
