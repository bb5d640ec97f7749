// Package cli holds what rbee's two commands share: flags with RBEE_*
// environment fallbacks, output formatting, and signal handling.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Flags wraps a FlagSet whose flags take their defaults from RBEE_*
// environment variables; a malformed variable is an error at Parse.
type Flags struct {
	examples []string
	*flag.FlagSet
	usage, summary string
	help           io.Writer         // where --help goes: stdout, as users page it
	envs           map[string]string // each flag's environment variable
	errs           []string
	pos            []string // the positional arguments, when ParseArgs collected them
}

// Args returns the positional arguments.
func (f *Flags) Args() []string {
	if f.pos != nil {
		return f.pos
	}
	return f.FlagSet.Args()
}

// NArg returns how many positional arguments there are.
func (f *Flags) NArg() int { return len(f.Args()) }

// Arg returns positional argument i, "" when there is none.
func (f *Flags) Arg(i int) string {
	if a := f.Args(); i >= 0 && i < len(a) {
		return a[i]
	}
	return ""
}

// NewFlags returns a FlagSet named name whose --help prints usage and
// summary first, then the flags and the examples, on stdout.
func NewFlags(name, usage, summary string) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package's own messages (an error, then every flag) are
	// replaced: Parse words errors itself, in one line.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Flags{FlagSet: fs, usage: usage, summary: summary, help: os.Stdout, envs: map[string]string{}}
}

// Given reports whether flag name was set, on the command line or by its
// environment variable (even to its default, or to "").
func (f *Flags) Given(name string) bool {
	given := false
	f.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	if env := f.envs[name]; env != "" {
		_, inEnv := os.LookupEnv(env)
		given = given || inEnv
	}
	return given
}

// SetOutput sets where --help is written (stdout by default).
func (f *Flags) SetOutput(w io.Writer) { f.help = w }

// PrintHelp writes the usage line, the summary, the flags and the
// examples to w.
func (f *Flags) PrintHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", f.usage, f.summary)
	if hasFlags(f.FlagSet) {
		fmt.Fprintf(w, "\nFlags:\n")
		f.FlagSet.SetOutput(w)
		f.FlagSet.PrintDefaults()
		f.FlagSet.SetOutput(io.Discard)
	}
	if len(f.examples) > 0 {
		fmt.Fprintf(w, "\nExample:\n")
		for _, e := range f.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// Example adds command lines that --help shows under "Example".
func (f *Flags) Example(lines ...string) { f.examples = append(f.examples, lines...) }

// hasFlags reports whether fs defines any flag.
func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// envNote is the help's mention of a flag's variable.
func envNote(env string) string {
	if env == "" {
		return ""
	}
	return " (env " + env + ")"
}

// String defines a string flag defaulting to $env, else def.
func (f *Flags) String(name, env, def, usage string) *string {
	f.envs[name] = env
	if v, ok := os.LookupEnv(env); ok && env != "" {
		def = v
	}
	return f.FlagSet.String(name, def, usage+envNote(env))
}

// Duration defines a duration flag defaulting to $env, else def.
func (f *Flags) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	f.envs[name] = env
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
	f.envs[name] = env
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

// Parse parses args; it reports bad environment variables too. --help
// prints the help and returns flag.ErrHelp; any other problem is a usage
// error (ErrUsage) in one line, an unknown flag with the likeliest one
// meant.
func (f *Flags) Parse(args []string) error {
	if completing {
		completedSet = f
		return flag.ErrHelp
	}
	if err := f.FlagSet.Parse(args); errors.Is(err, flag.ErrHelp) {
		f.PrintHelp(f.help)
		return err
	} else if err != nil {
		return Usagef("%s", f.explain(err))
	}
	if len(f.errs) > 0 {
		return Usagef("%s", strings.Join(f.errs, "; "))
	}
	return nil
}

// explain words a flag package error for a user: flags with two dashes,
// as the help writes them, a suggestion for a misspelt one, and where to
// find the rest.
func (f *Flags) explain(err error) string {
	msg := err.Error()
	seeHelp := fmt.Sprintf(" (%s --help lists the flags)", f.Name())
	const unknown = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(msg, unknown); ok {
		var names []string
		f.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
		if best := Suggest(name, names); best != "" {
			return fmt.Sprintf("unknown flag --%s: did you mean --%s?", name, best)
		}
		return "unknown flag --" + name + seeHelp
	}
	// "invalid value "x" for flag -n: ...", "flag needs an argument: -n".
	msg = strings.Replace(msg, "flag -", "flag --", 1)
	msg = strings.Replace(msg, "argument: -", "argument: --", 1)
	return msg + seeHelp
}

// Repeated is a flag that may be given many times.
type Repeated []string

func (r *Repeated) String() string     { return strings.Join(*r, ",") }
func (r *Repeated) Set(v string) error { *r = append(*r, v); return nil }

// Int defines an integer flag defaulting to $env, else def.
func (f *Flags) Int(name, env string, def int, usage string) *int {
	f.envs[name] = env
	if v, ok := os.LookupEnv(env); ok && env != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: want a whole number", env, v))
		} else {
			def = n
		}
	}
	return f.FlagSet.Int(name, def, usage+envNote(env))
}

// Float defines a number flag defaulting to $env, else def.
func (f *Flags) Float(name, env string, def float64, usage string) *float64 {
	f.envs[name] = env
	if v, ok := os.LookupEnv(env); ok && env != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: want a number", env, v))
		} else {
			def = n
		}
	}
	return f.FlagSet.Float64(name, def, usage+envNote(env))
}

// List defines a flag that may be given many times; $env, a comma-separated
// list, is the default when the flag is not given.
func (f *Flags) List(name, env, usage string) *Repeated {
	f.envs[name] = env
	r := &listFlag{}
	if v, ok := os.LookupEnv(env); ok && env != "" {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				r.vals = append(r.vals, s)
			}
		}
		r.fromEnv = true
	}
	f.FlagSet.Var(r, name, usage+" (repeatable)"+envNote(env))
	return &r.vals
}

// listFlag collects repeated values; the first one given on the command
// line replaces those from the environment.
type listFlag struct {
	vals    Repeated
	fromEnv bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }
func (l *listFlag) Set(v string) error {
	if l.fromEnv {
		l.vals, l.fromEnv = nil, false
	}
	l.vals = append(l.vals, v)
	return nil
}
