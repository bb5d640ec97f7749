package v2vm

import (
	"fmt"
	"net"
	"strings"
)

// HiveUnit is what the systemd step reads from deploy/systemd/rbee-hive.service
// to install it unchanged: the program ExecStart runs and its flags, so
// that the files and the user it names can be made in the image.
type HiveUnit struct {
	// Binary is ExecStart's program (where the VM's rbee-hive goes).
	Binary string
	// Flags holds ExecStart's --flag value pairs ("true" for a flag
	// without a value).
	Flags map[string]string
}

// ParseHiveUnit reads a unit file's ExecStart (continuation lines joined,
// systemd's prefixes such as "-" or "+" dropped). Arguments are split at
// white space: the unit's ExecStart uses no quoting.
func ParseHiveUnit(text string) (HiveUnit, error) {
	joined := strings.ReplaceAll(text, "\\\n", " ")
	var exec string
	section := ""
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]" && strings.HasPrefix(line, "ExecStart="):
			if exec != "" {
				return HiveUnit{}, fmt.Errorf("more than one ExecStart")
			}
			exec = strings.TrimPrefix(line, "ExecStart=")
		}
	}
	argv := strings.Fields(exec)
	if len(argv) == 0 {
		return HiveUnit{}, fmt.Errorf("no ExecStart in [Service]")
	}
	u := HiveUnit{Binary: strings.TrimLeft(argv[0], "-@:+!"), Flags: map[string]string{}}
	if strings.ContainsAny(exec, `"'`) {
		return HiveUnit{}, fmt.Errorf("ExecStart uses quoting, which this reader does not parse: %s", exec)
	}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			return HiveUnit{}, fmt.Errorf("ExecStart argument %q is not a flag", a)
		}
		name := strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			u.Flags[k] = v
			continue
		}
		if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			u.Flags[name] = argv[i+1]
			i++
			continue
		}
		u.Flags[name] = "true"
	}
	return u, nil
}

// Provision says what the image must hold for the unit to start as
// shipped, and how a client on the VM reaches the hive.
type Provision struct {
	// Files maps an absolute path to what it holds: one of the Content*
	// values below.
	Files map[string]Content
	// Dirs are directories to make (0755).
	Dirs []string
	// WorkerBin is where the test worker goes (below --worker-bin-dir).
	WorkerBin string
	// WorkerUser is the user workers run as, made at boot.
	WorkerUser string
	// URL is the hive's API address for the CLI on the VM.
	URL string
}

// Content is a kind of file the systemd step provides.
type Content string

const (
	ContentCert  Content = "server certificate"
	ContentKey   Content = "server key"
	ContentCA    Content = "CA certificate"
	ContentToken Content = "operator token"
	ContentQueen Content = "token for the queen"
)

// Provision maps the unit's flags to what the image needs. A flag naming
// a file it does not know is an error, so that a new flag in the unit
// makes the lane say what to teach it rather than fail in the VM.
func (u HiveUnit) Provision() (Provision, error) {
	p := Provision{Files: map[string]Content{}, WorkerUser: "nobody"}
	scheme := "http"
	listen := "127.0.0.1:7835"
	for flag, v := range u.Flags {
		switch flag {
		case "tls-cert":
			p.Files[v], scheme = ContentCert, "https"
		case "tls-key":
			p.Files[v] = ContentKey
		case "queen-ca":
			p.Files[v] = ContentCA
		case "token-file":
			p.Files[v] = ContentToken
		case "queen-token-file":
			p.Files[v] = ContentQueen
		case "worker-bin-dir":
			p.Dirs = append(p.Dirs, v)
			p.WorkerBin = strings.TrimSuffix(v, "/") + "/testworker"
		case "worker-user":
			p.WorkerUser = v
		case "listen":
			listen = v
		case "hive-url", "queen", "worker-log-dir", "interval", "hive-id", "gpu", "gpu-timeout",
			"cgroup-parent", "worker-pids-max", "stop-grace", "stop-workers-on-exit", "insecure-no-tls",
			"allowed-host", "worker-log-max-size", "worker-log-files", "state-dir":
			// Nothing to provide: a value, or a directory systemd makes
			// (LogsDirectory=, StateDirectory=) or the hive makes.
		default:
			return Provision{}, fmt.Errorf("the unit's ExecStart has --%s %s, which harness/v2vm/unit.go does not know how to provide", flag, v)
		}
	}
	if p.WorkerBin == "" {
		p.WorkerBin = "/usr/local/lib/rbee-ci/testworker"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return Provision{}, fmt.Errorf("--listen %s: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	p.URL = scheme + "://" + net.JoinHostPort(host, port)
	return p, nil
}
