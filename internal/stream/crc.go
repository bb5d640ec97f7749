package stream

// A gzip trailer holds the CRC-32 of all the data of the stream. Each
// frame's CRC is computed once, and each client's CRC is combined with it
// by arithmetic over GF(2) (as zlib's crc32_combine), which costs the same
// for any frame length: a hive's join is a megabyte of frames to each of a
// thousand viewers, a gigabyte to checksum client by client.

// crcPoly is the IEEE CRC-32 polynomial, reflected.
const crcPoly = 0xedb88320

// multModP returns a·b modulo the CRC polynomial. a must not be zero.
func multModP(a, b uint32) uint32 {
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
}

// x2nTable[k] is x^(2^k) modulo the CRC polynomial.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x¹
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// crcShift returns x^(8n) modulo the CRC polynomial: what a CRC is
// multiplied by when n bytes follow its data.
func crcShift(n uint64) uint32 {
	p := uint32(1) << 31 // x⁰
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
	}
	return p
}

// crcCombine returns the CRC-32 of A followed by B, given crcA, crcB and
// shiftB, crcShift of B's length.
func crcCombine(crcA, crcB, shiftB uint32) uint32 {
	return multModP(shiftB, crcA) ^ crcB
}
