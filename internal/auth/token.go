// Package auth is the trust boundary of both daemons: tokens and the roles
// they carry, the request guard (credentials, cross-site and DNS-rebinding
// checks), and the rule that a token never crosses a network in clear text.
//
// Loopback is not a trust boundary: other local users and every web page
// open in a browser on the host reach a loopback port. So a daemon always
// has an operator token (generated into its state directory when none is
// given) unless it is told --insecure-no-auth.
package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvToken is the environment variable holding the operator token itself.
const EnvToken = "RBEE_TOKEN"

// TokenFileName is the operator token's file name in a state directory.
const TokenFileName = "token"

// ReadTokenFileName is the generated read-only token's file name in a
// queen's state directory.
const ReadTokenFileName = "read-token"

// maxTokenLen bounds a token file's contents.
const maxTokenLen = 4096

// minTokenLen is the shortest token accepted: a guessable token is no
// credential.
const minTokenLen = 16

// ErrNoToken means no token was configured where one was looked for.
var ErrNoToken = errors.New("no token")

// DefaultStateDir is where a daemon keeps its generated token: /var/lib/rbee
// for root, $XDG_STATE_HOME/rbee (or ~/.local/state/rbee) for anyone else.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/rbee"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "rbee")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "rbee")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("rbee-%d", os.Geteuid()))
}

// ReadTokenFile returns the token in file, trimmed. The file must not be
// readable or writable by group or others: a token anyone on the host can
// read protects nothing.
func ReadTokenFile(file string) (string, error) {
	st, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s: not a regular file", file)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s is accessible by group or others (mode %04o): run chmod 600 %s", file, perm, file)
	}
	if st.Size() > maxTokenLen {
		return "", fmt.Errorf("token file %s: larger than %d bytes", file, maxTokenLen)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", file, err)
	}
	return tok, nil
}

func checkToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("empty token")
	case len(tok) < minTokenLen:
		return fmt.Errorf("token shorter than %d characters", minTokenLen)
	case strings.ContainsAny(tok, " \t\r\n"):
		return errors.New("token holds white space")
	}
	for _, r := range tok {
		if r < 0x21 || r > 0x7e {
			return errors.New("token holds a character outside printable ASCII")
		}
	}
	return nil
}

// LoadToken returns the token from file, or from $RBEE_TOKEN when file is
// empty. It returns ErrNoToken when neither is set.
func LoadToken(file string) (string, error) {
	if file != "" {
		return ReadTokenFile(file)
	}
	tok := strings.TrimSpace(os.Getenv(EnvToken))
	if tok == "" {
		return "", ErrNoToken
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("%s: %w", EnvToken, err)
	}
	return tok, nil
}

// Source says where an operator token came from, for the daemon's log.
type Source struct {
	// Path is the token file, "" for $RBEE_TOKEN.
	Path string
	// Created is true when the daemon generated the token just now.
	Created bool
}

// OperatorToken resolves a daemon's operator token: --token-file, else
// $RBEE_TOKEN, else <stateDir>/token, created (0600, in a 0700 directory)
// with a random token when it does not exist.
func OperatorToken(file, stateDir string) (string, Source, error) {
	tok, err := LoadToken(file)
	if !errors.Is(err, ErrNoToken) {
		return tok, Source{Path: file}, err
	}
	if stateDir == "" {
		stateDir = DefaultStateDir()
	}
	return StateToken(stateDir, TokenFileName)
}

// StateToken returns the token in <stateDir>/<name>, creating it (0600,
// in a 0700 directory) with a random token when it does not exist.
func StateToken(stateDir, name string) (string, Source, error) {
	path := filepath.Join(stateDir, name)
	if tok, err := ReadTokenFile(path); err == nil {
		return tok, Source{Path: path}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", Source{}, err
	}
	tok, err := createToken(stateDir, path)
	if errors.Is(err, fs.ErrExist) {
		// Another daemon on this host created it first: use that one.
		tok, err = ReadTokenFile(path)
		return tok, Source{Path: path}, err
	}
	return tok, Source{Path: path, Created: err == nil}, err
}

func createToken(dir, path string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	// Written under a temporary name and linked into place, so a second
	// daemon starting at the same moment never reads a half-written file.
	tmp, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("create token: %w", err)
	}
	if _, err := tmp.WriteString(tok + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("create token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", err
		}
		return "", fmt.Errorf("create token %s: %w", path, err)
	}
	return tok, nil
}

// ClientToken resolves the token a command-line client sends: --token-file,
// else $RBEE_TOKEN, else the daemon's generated <stateDir>/token when this
// user can read it. It returns ErrNoToken, with what was tried, otherwise.
func ClientToken(file, stateDir string) (string, error) {
	tok, err := LoadToken(file)
	if !errors.Is(err, ErrNoToken) {
		return tok, err
	}
	if stateDir == "" {
		stateDir = DefaultStateDir()
	}
	path := filepath.Join(stateDir, TokenFileName)
	tok, err = ReadTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return "", fmt.Errorf("%w: set --token-file or %s (looked for the daemon's generated token at %s: %v)", ErrNoToken, EnvToken, path, errors.Unwrap(err))
	}
	return tok, err
}
