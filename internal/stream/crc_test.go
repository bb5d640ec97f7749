package stream

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// The combined CRC of two pieces is the CRC of their concatenation, for
// empty pieces, lengths around powers of two and a megabyte.
func TestCRCCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20+3)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, tc := range []struct{ a, b int }{
		{0, 0}, {0, 1}, {1, 0}, {1, 1}, {3, 7}, {255, 256}, {4096, 4095},
		{65536, 1}, {1, 65536}, {12345, 93000}, {1 << 20, 3}, {3, 1 << 20},
	} {
		a, b := data[:tc.a], data[tc.a:tc.a+tc.b]
		want := crc32.ChecksumIEEE(data[:tc.a+tc.b])
		got := crcCombine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), crcShift(uint64(len(b))))
		if got != want {
			t.Errorf("combine(%d bytes, %d bytes) = %08x, want %08x", tc.a, tc.b, got, want)
		}
	}
	// A stream of many frames, combined one at a time as a client's is.
	var crc uint32
	var n int
	for n < len(data)-5000 {
		m := r.IntN(5000)
		crc = crcCombine(crc, crc32.ChecksumIEEE(data[n:n+m]), crcShift(uint64(m)))
		n += m
	}
	if want := crc32.ChecksumIEEE(data[:n]); crc != want {
		t.Errorf("frame by frame over %d bytes: %08x, want %08x", n, crc, want)
	}
}

func BenchmarkCRCCombine(b *testing.B) {
	shift := crcShift(93000)
	var crc uint32
	for b.Loop() {
		crc = crcCombine(crc, 0x12345678, shift)
	}
	_ = crc
}
