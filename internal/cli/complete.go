package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// completeCmd is the hidden command the completion scripts call with the
// words typed so far, the one being completed last; it prints the
// candidates, one a line.
const completeCmd = "__complete"

// completing makes Flags.Parse record its flag set and stop, so that the
// flags of a command are found by running it: each command defines its
// own flags when it runs.
var (
	completing   bool
	completedSet *Flags
)

// complete prints the candidates for the last of words: a command name,
// a flag of the command, nothing where a flag's value or an argument
// goes (the shell's own file completion takes over).
func complete(out io.Writer, def func(context.Context, io.Writer, []string) error, cmds []Command, words []string) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	run := def
	if len(before) > 0 && !strings.HasPrefix(before[0], "-") {
		run = nil
		for _, c := range cmds {
			if c.Name == before[0] {
				run = c.Run
			}
		}
		if run == nil {
			return
		}
		before = before[1:]
	} else if !strings.HasPrefix(cur, "-") {
		names := []string{"help", "version", "completion"}
		for _, c := range cmds {
			names = append(names, c.Name)
		}
		printMatches(out, cur, names)
		return
	}
	fs := flagsOf(run)
	if fs == nil {
		return
	}
	if n := len(before); n > 0 && strings.HasPrefix(before[n-1], "-") && !strings.Contains(before[n-1], "=") {
		if f := fs.Lookup(strings.TrimLeft(before[n-1], "-")); f != nil && !isBool(f) {
			return // the flag's value
		}
	}
	if !strings.HasPrefix(cur, "-") {
		return
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	printMatches(out, cur, names)
}

// flagsOf runs a command far enough to define its flags, and returns them.
func flagsOf(run func(context.Context, io.Writer, []string) error) *Flags {
	completing, completedSet = true, nil
	defer func() { completing = false }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing it starts may run on
	if err := run(ctx, io.Discard, nil); err != nil && !errors.Is(err, flag.ErrHelp) {
		return completedSet
	}
	return completedSet
}

// isBool reports whether f takes no value.
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// printMatches prints the candidates that begin with prefix, sorted.
func printMatches(out io.Writer, prefix string, cands []string) {
	slices.Sort(cands)
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) {
			fmt.Fprintln(out, c)
		}
	}
}

// completionScript returns the completion script of name for shell.
func completionScript(name, shell string) (string, error) {
	fn := "_" + strings.ReplaceAll(name, "-", "_")
	switch shell {
	case "bash":
		return fmt.Sprintf(`# bash completion for %[1]s: %[1]s completion bash > /etc/bash_completion.d/%[1]s
%[2]s() {
    local IFS=$'\n'
    COMPREPLY=($(%[1]s %[3]s "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F %[2]s %[1]s
`, name, fn, completeCmd), nil
	case "zsh":
		return fmt.Sprintf(`#compdef %[1]s
# zsh completion for %[1]s: %[1]s completion zsh > "${fpath[1]}/_%[1]s"
%[2]s() {
    local -a cands
    cands=("${(@f)$(%[1]s %[3]s "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if (( ${#cands} )) && [[ -n "${cands[1]}" ]]; then
        compadd -a cands
    else
        _files
    fi
}
compdef %[2]s %[1]s
`, name, fn, completeCmd), nil
	case "fish":
		return fmt.Sprintf(`# fish completion for %[1]s: %[1]s completion fish > ~/.config/fish/completions/%[1]s.fish
complete -c %[1]s -a '(%[1]s %[2]s (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`, name, completeCmd), nil
	}
	return "", Usagef("completion %q: want bash, zsh or fish", shell)
}
