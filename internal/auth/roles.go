package auth

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rbee-dev/rbee/internal/ids"
)

// Role is what a credential may do.
type Role int

// The roles, from least to most trusted. A hive token is not "less" than a
// read-only token: it may post heartbeats for one hive id and nothing else.
const (
	// RoleNone is an anonymous request.
	RoleNone Role = iota
	// RoleHive may post heartbeats for its own hive id only.
	RoleHive
	// RoleReader may read: GET requests and the event stream.
	RoleReader
	// RoleOperator may do everything.
	RoleOperator
)

func (r Role) String() string {
	switch r {
	case RoleHive:
		return "hive"
	case RoleReader:
		return "read-only"
	case RoleOperator:
		return "operator"
	}
	return "anonymous"
}

// Principal is who sent a request.
type Principal struct {
	Role Role
	// HiveID is the hive a RoleHive token belongs to.
	HiveID string
}

// Tokens are a daemon's credentials. Empty fields are not accepted.
type Tokens struct {
	// Operator may do everything.
	Operator string
	// Reader may read (GET and the stream): for dashboards and Prometheus.
	Reader string
	// Hives maps a hive id to the token that lets it, and only it, post
	// its heartbeats (queen only).
	Hives map[string]string
}

// digest is what tokens are looked up by: comparing a hash in a map takes
// the same time whatever prefix of a real token a guess shares, and one
// lookup serves ten thousand hive tokens.
type digest [32]byte

func (t Tokens) index() (map[digest]Principal, error) {
	idx := map[digest]Principal{}
	add := func(tok string, p Principal) error {
		if err := checkToken(tok); err != nil {
			return fmt.Errorf("%s token: %w", p.Role, err)
		}
		d := sha256.Sum256([]byte(tok))
		if prev, ok := idx[d]; ok {
			return fmt.Errorf("the same token is given for the %s and the %s role: each role needs its own", prev.Role, p.Role)
		}
		idx[d] = p
		return nil
	}
	if t.Operator != "" {
		if err := add(t.Operator, Principal{Role: RoleOperator}); err != nil {
			return nil, err
		}
	}
	if t.Reader != "" {
		if err := add(t.Reader, Principal{Role: RoleReader}); err != nil {
			return nil, err
		}
	}
	for id, tok := range t.Hives {
		if err := add(tok, Principal{Role: RoleHive, HiveID: id}); err != nil {
			return nil, fmt.Errorf("hive %s: %w", id, err)
		}
	}
	return idx, nil
}

// MaxHiveTokens bounds a --hive-tokens file.
const MaxHiveTokens = 100000

// LoadHiveTokens reads a --hive-tokens file: one "hive-id token" per line;
// blank lines and lines starting with # are ignored. The file must be
// private (mode 0600) like any token file.
func LoadHiveTokens(file string) (map[string]string, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("hive tokens: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("hive tokens file %s is accessible by group or others (mode %04o): run chmod 600 %s", file, perm, file)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("hive tokens: %w", err)
	}
	defer f.Close()
	return parseHiveTokens(f, file)
}

// parseHiveTokens reads "hive-id token" lines from r (named file in
// errors).
func parseHiveTokens(r io.Reader, file string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"hive-id token\"", file, n)
		}
		id, tok := fields[0], fields[1]
		if err := ids.ValidHiveID(id); err != nil {
			return nil, fmt.Errorf("%s:%d: hive id %s: %w", file, n, ids.Quote(id), err)
		}
		if err := checkToken(tok); err != nil {
			return nil, fmt.Errorf("%s:%d: hive %s: %w", file, n, id, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("%s:%d: hive %s is listed twice", file, n, id)
		}
		if len(out) >= MaxHiveTokens {
			return nil, fmt.Errorf("%s: more than %d hive tokens", file, MaxHiveTokens)
		}
		out[id] = tok
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}
