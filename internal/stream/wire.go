package stream

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/flate"
)

// A gzip stream per client would compress every event once per client: a
// thousand dashboards would cost the queen a thousand compressions of
// each. Instead each frame is deflated once, on its own (no reference to
// what came before it) and ended by a sync flush, which leaves it
// byte-aligned and not final: such segments joined in any order are one
// valid deflate stream. A client's gzip stream is a header, the segments
// of its frames, and, when the stream ends cleanly, a final empty block
// and the trailer (the CRC-32 and length of what it carried, which is all
// each client keeps for itself).

// wire is one frame as clients get it: raw, or as a deflate segment that
// any client's gzip stream can carry, made on first need.
type wire struct {
	raw   []byte
	level int
	once  sync.Once
	z     []byte
	// crc is raw's CRC-32, shift crcShift of its length: what each gzip
	// client combines into its own CRC (see crc.go).
	crc, shift uint32
}

// Deflate levels. Each frame is deflated once and its bytes written to
// every gzip client, so a better ratio is paid for once and saved a
// thousand times. Large frames (a snapshot, a hive_online with its
// workers' records) are where the levels differ: a hive_online of 100
// workers, 93 KB, is 14.2 KB at level 1 and 10.8 KB at level 6, in about a
// millisecond. Small ones (hive_telemetry of 100 workers, 10 KB: 4.6 vs 4.4
// KB) are not worth the slower level when a thousand hives report.
const (
	smallLevel = flate.BestSpeed
	largeLevel = 6
	largeFrame = 16 << 10
)

// levelFor returns the deflate level for a frame of n bytes.
func levelFor(n int) int {
	if n >= largeFrame {
		return largeLevel
	}
	return smallLevel
}

// newWire returns raw as a frame clients can take, deflated at the level
// its size calls for.
func newWire(raw []byte) *wire { return &wire{raw: raw, level: levelFor(len(raw))} }

// keepAlive is the comment sent when there is nothing else to send.
var keepAlive = newWire([]byte(": keep-alive\n\n"))

var deflaters = [flate.BestCompression + 1]sync.Pool{}

// deflated returns w's deflate segment.
func (w *wire) deflated() []byte {
	w.once.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(w.raw)/3 + 64)
		fw, _ := deflaters[w.level].Get().(*flate.Writer)
		if fw == nil {
			fw, _ = flate.NewWriter(&buf, w.level) // the levels used are valid
		} else {
			fw.Reset(&buf)
		}
		_, _ = fw.Write(w.raw) // a bytes.Buffer does not fail
		_ = fw.Flush()
		deflaters[w.level].Put(fw)
		w.z = bytes.Clone(buf.Bytes()) // sized to fit: it may stay in the replay buffer
		w.crc, w.shift = crc32.ChecksumIEEE(w.raw), crcShift(uint64(len(w.raw)))
	})
	return w.z
}

// gzipHeader opens a gzip stream: no name, no time, OS unknown.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// gzipState is what one client's gzip stream keeps: the CRC-32 and the
// length of the data it carried, for its trailer.
type gzipState struct {
	crc  uint32
	size uint32
}

// segment returns w's bytes on a gzip stream, accounting its data.
func (g *gzipState) segment(w *wire) []byte {
	z := w.deflated()
	g.crc = crcCombine(g.crc, w.crc, w.shift)
	g.size += uint32(len(w.raw)) // gzip keeps the length modulo 2³²
	return z
}

// end returns what ends the stream: a final empty fixed-Huffman block and
// the trailer.
func (g *gzipState) end() []byte {
	b := []byte{3, 0}
	b = binary.LittleEndian.AppendUint32(b, g.crc)
	return binary.LittleEndian.AppendUint32(b, g.size)
}
