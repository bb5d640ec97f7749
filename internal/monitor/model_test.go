package monitor

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rbee-dev/rbee/internal/api"
)

func TestModelFromArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" = nil
	}{
		{"separate", []string{"--model", "qwen2.5-0.5b", "--port", "9301"}, "qwen2.5-0.5b"},
		{"equals", []string{"--model=meta-llama/Llama-3.1-8B-Instruct"}, "meta-llama/Llama-3.1-8B-Instruct"},
		{"short", []string{"-m", "/models/mistral.gguf"}, "/models/mistral.gguf"},
		{"short equals", []string{"-m=x"}, "x"},
		{"served wins", []string{"--model", "/w/llama", "--served-model-name", "llama-chat"}, "llama-chat"},
		{"served before model", []string{"--served-model-name=a", "--model", "b"}, "a"},
		{"python script", []string{"worker.py", "--model", "Qwen/Qwen2.5-0.5B", "--idle"}, "Qwen/Qwen2.5-0.5B"},
		{"first model wins", []string{"--model", "a", "--model", "b"}, "a"},
		{"missing value", []string{"--model"}, ""},
		{"flag as value", []string{"--model", "--port", "1"}, ""},
		{"empty equals", []string{"--model="}, ""},
		{"lookalike", []string{"--models", "x", "-mx"}, ""},
		{"none", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ModelFromArgs(tc.args)
			if tc.want == "" {
				if got != nil {
					t.Fatalf("ModelFromArgs(%q) = %q, want nil", tc.args, *got)
				}
				return
			}
			if got == nil || *got != tc.want {
				t.Fatalf("ModelFromArgs(%q) = %v, want %q", tc.args, got, tc.want)
			}
		})
	}
}

func FuzzModelFromArgs(f *testing.F) {
	f.Add("--model", "x", "--served-model-name=y")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		if m := ModelFromArgs([]string{a, b, c}); m != nil && *m == "" {
			t.Fatal("empty model name")
		}
	})
}

// A command line read from the host is cut to what a heartbeat carries,
// and stays valid UTF-8.
func TestClipArgs(t *testing.T) {
	long := make([]string, 300)
	for i := range long {
		long[i] = "a"
	}
	long[1] = strings.Repeat("é", 3000) // 6000 bytes
	long[2] = "bad\xff"
	got := clipArgs(long)
	if len(got) != api.MaxWorkerArgs+1 {
		t.Fatalf("%d args, want %d", len(got), api.MaxWorkerArgs+1)
	}
	for i, a := range got {
		if len(a) > api.MaxArgLen || !utf8.ValidString(a) {
			t.Fatalf("arg %d: %d bytes, valid %v", i, len(a), utf8.ValidString(a))
		}
	}
	if got[2] != "bad\uFFFD" {
		t.Fatalf("invalid UTF-8 became %q", got[2])
	}
}
