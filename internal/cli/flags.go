// Package cli holds what rbee's two commands share: flags with RBEE_*
// environment fallbacks, output formatting, and signal handling.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Flags wraps a FlagSet whose flags take their defaults from RBEE_*
// environment variables; a malformed variable is an error at Parse.
type Flags struct {
	*flag.FlagSet
	errs []string
}

// NewFlags returns a FlagSet named name whose usage prints summary first.
func NewFlags(name, usage, summary string) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n", usage, summary)
		if hasFlags(fs) {
			fmt.Fprintf(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return &Flags{FlagSet: fs}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func envNote(env string) string {
	if env == "" {
		return ""
	}
	return " (env " + env + ")"
}

// String defines a string flag defaulting to $env, else def.
func (f *Flags) String(name, env, def, usage string) *string {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		def = v
	}
	return f.FlagSet.String(name, def, usage+envNote(env))
}

// Duration defines a duration flag defaulting to $env, else def.
func (f *Flags) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: want a positive duration such as 1s", env, v))
		} else {
			def = d
		}
	}
	return f.FlagSet.Duration(name, def, usage+envNote(env))
}

// Bool defines a boolean flag defaulting to $env, else def.
func (f *Flags) Bool(name, env string, def bool, usage string) *bool {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: want true or false", env, v))
		} else {
			def = b
		}
	}
	return f.FlagSet.Bool(name, def, usage+envNote(env))
}

// Parse parses args; it reports bad environment variables too.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if len(f.errs) > 0 {
		return fmt.Errorf("%s", strings.Join(f.errs, "; "))
	}
	return nil
}

// Repeated is a flag that may be given many times.
type Repeated []string

func (r *Repeated) String() string     { return strings.Join(*r, ",") }
func (r *Repeated) Set(v string) error { *r = append(*r, v); return nil }
