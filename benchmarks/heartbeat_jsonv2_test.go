//go:build goexperiment.jsonv2

package benchmarks

import jsonv2 "encoding/json/v2"

func init() {
	decoders["jsonv2"] = func(b []byte, v any) error { return jsonv2.Unmarshal(b, v) }
}
