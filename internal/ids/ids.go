// Package ids validates the names rbee accepts from the outside world
// (worker groups and instances, hive ids, model names) and builds worker
// ids. It is a leaf: every other package that needs these rules imports it.
package ids

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds a group, an instance or a hive id.
const MaxNameLen = 64

// MaxTextLen bounds free text such as a model name or an argument.
const MaxTextLen = 4096

// ValidName reports whether s may be a worker group or instance, and so a
// path component of a worker cgroup: 1 to MaxNameLen of [A-Za-z0-9._-], not
// "." or "..". Anything else could reach a cgroup outside the hive's
// subtree or smuggle control characters into a terminal.
func ValidName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("longer than %d characters", MaxNameLen)
	case s == "." || s == "..":
		return fmt.Errorf("%q is not allowed", s)
	}
	for _, r := range s {
		if !nameChar(r) {
			return fmt.Errorf("character %s not allowed (use A-Z a-z 0-9 . _ -)", strconv.QuoteRune(r))
		}
	}
	return nil
}

// nameChar is a character of a name: A-Z a-z 0-9 . _ -
func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// ValidHiveID reports whether s may be a hive id; the rules are those of
// ValidName.
func ValidHiveID(s string) error { return ValidName(s) }

// HiveIDFromHostname makes a hive id of a hostname: each character a
// name may not hold becomes '-', and the result is cut to MaxNameLen
// ("gpu_node#7" → "gpu_node-7"). It fails for a host without a name:
// empty, or the kernel's "(none)" (a minimal VM's), which would give every
// such host the same id.
func HiveIDFromHostname(host string) (string, error) {
	if host == "" || host == "(none)" || host == "localhost" {
		return "", fmt.Errorf("the hostname %s names no host in particular", Quote(host))
	}
	id := strings.Map(func(r rune) rune {
		if !nameChar(r) {
			return '-'
		}
		return r
	}, host)
	id = strings.Trim(id, "-.")
	if len(id) > MaxNameLen {
		id = strings.TrimRight(id[:MaxNameLen], "-.")
	}
	if err := ValidHiveID(id); err != nil {
		return "", fmt.Errorf("the hostname %s makes no hive id: %w", Quote(host), err)
	}
	return id, nil
}

// WorkerID is a worker's stable id, "<group>-<instance>".
func WorkerID(group, instance string) string { return group + "-" + instance }

// MaxWorkerIDLen bounds a worker id: a group, a dash and an instance.
const MaxWorkerIDLen = 2*MaxNameLen + 1

// ValidWorkerID reports whether s may be a worker id, as a route or a
// file name receives one: a valid group, "-" and a valid instance. Such
// an id is a single path component made of [A-Za-z0-9._-], never "." or
// "..", so it can name a file or a cgroup and reach nothing else.
func ValidWorkerID(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxWorkerIDLen:
		return fmt.Errorf("longer than %d characters", MaxWorkerIDLen)
	}
	for _, r := range s {
		if !nameChar(r) {
			return fmt.Errorf("character %s not allowed (a worker id is <group>-<instance>, of A-Z a-z 0-9 . _ -)", strconv.QuoteRune(r))
		}
	}
	// Any dash may be the one between group and instance (either may
	// hold dashes): one split into two valid names is enough.
	for i := range len(s) {
		if s[i] == '-' && ValidName(s[:i]) == nil && ValidName(s[i+1:]) == nil {
			return nil
		}
	}
	return errors.New("not <group>-<instance>")
}

// ValidText reports whether s may be free text shown to people (a model
// name, an error): valid UTF-8, at most max bytes, no control characters.
func ValidText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if isControl(r) {
			return fmt.Errorf("control character %U not allowed", r)
		}
	}
	return nil
}

// isControl is a C0 or C1 control character, DEL, or a Unicode format
// character such as a bidirectional override, which can make a terminal
// or a page show something other than what the bytes say.
func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || unicode.Is(unicode.Cf, r)
}

// Clean replaces control characters and invalid UTF-8 in s with U+FFFD
// and cuts it to max bytes, for text taken from the host (a command line)
// that must still be shown.
func Clean(s string, max int) string {
	if ValidText(s, max) == nil {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CleanLines is Clean for text of several lines (a worker's output):
// newlines and tabs stay, other control characters become U+FFFD, invalid
// UTF-8 is replaced, and the last max bytes are kept.
func CleanLines(s string, max int) string {
	if len(s) > max {
		s = s[len(s)-max:]
	}
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && isControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

// Quote returns s for a log line or an error message: quoted, with control
// characters escaped, and cut to 64 bytes.
func Quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// Safe returns s for a terminal: as it is when it has no control
// characters, else quoted with them escaped, so nothing a remote party
// names can move the cursor or change a terminal's title.
func Safe(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if isControl(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
