package v2vm

import (
	"os"
	"strings"
	"testing"
)

// TestShippedHiveUnitProvisions reads the repository's unit: the systemd
// steps install it unchanged, so everything its ExecStart names must be
// something they know how to provide.
func TestShippedHiveUnitProvisions(t *testing.T) {
	b, err := os.ReadFile("../../deploy/systemd/rbee-hive.service")
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseHiveUnit(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if u.Binary != "/usr/local/bin/rbee-hive" {
		t.Errorf("binary %q", u.Binary)
	}
	p, err := u.Provision()
	if err != nil {
		t.Fatal(err)
	}
	if p.Files["/etc/rbee/token"] != ContentToken || p.Files["/etc/rbee/hive.key"] != ContentKey {
		t.Errorf("files %v", p.Files)
	}
	if p.URL != "https://127.0.0.1:7835" || p.WorkerUser != "llm" || p.WorkerBin != "/opt/llm/testworker" {
		t.Errorf("provision %+v", p)
	}
}

func TestParseHiveUnit(t *testing.T) {
	for _, tc := range []struct {
		name, unit string
		binary     string
		flags      map[string]string
		err        string
	}{
		{"continuations", "[Unit]\nExecStart=/nope\n[Service]\nExecStart=-/opt/rbee-hive \\\n  --listen=[::]:7835 --stop-workers-on-exit \\\n  --worker-user llm\n",
			"/opt/rbee-hive", map[string]string{"listen": "[::]:7835", "stop-workers-on-exit": "true", "worker-user": "llm"}, ""},
		{"none", "[Service]\nType=simple\n", "", nil, "no ExecStart"},
		{"quoted", "[Service]\nExecStart=/x --hive-id \"a b\"\n", "", nil, "quoting"},
		{"positional", "[Service]\nExecStart=/x run\n", "", nil, "not a flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseHiveUnit(tc.unit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Binary != tc.binary || len(u.Flags) != len(tc.flags) {
				t.Fatalf("%+v", u)
			}
			for k, v := range tc.flags {
				if u.Flags[k] != v {
					t.Errorf("--%s = %q, want %q", k, u.Flags[k], v)
				}
			}
		})
	}
}

func TestProvisionRefusesUnknownFile(t *testing.T) {
	u := HiveUnit{Binary: "/x", Flags: map[string]string{"client-ca-file": "/etc/rbee/client.pem"}}
	if _, err := u.Provision(); err == nil || !strings.Contains(err.Error(), "--client-ca-file") {
		t.Fatalf("error %v", err)
	}
	u = HiveUnit{Binary: "/x", Flags: map[string]string{"listen": "0.0.0.0:9000", "token-file": "/t"}}
	p, err := u.Provision()
	if err != nil || p.URL != "http://127.0.0.1:9000" || p.WorkerUser != "nobody" {
		t.Fatalf("%+v, %v", p, err)
	}
}
