package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/version"
)

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	// Run runs it, writing what it prints to out.
	Run func(ctx context.Context, out io.Writer, args []string) error
}

// ErrUsage marks a usage error (exit status 2).
var ErrUsage = errors.New("usage error")

// Main dispatches os.Args to the default command (no subcommand, or a
// flag first) or a named one, with SIGINT and SIGTERM cancelling ctx, and
// exits with 0, 1 (failure) or 2 (usage).
func Main(name, about string, def func(context.Context, io.Writer, []string) error, cmds []Command) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	args := os.Args[1:]
	run := def
	if len(args) > 0 && args[0] == "help" {
		usage(os.Stdout, name, about, cmds)
		stop()
		return
	}
	if len(args) > 0 && args[0] == completeCmd {
		stop()
		complete(os.Stdout, def, cmds, args[1:])
		return
	}
	if len(args) > 0 && args[0] == "completion" {
		stop()
		if len(args) != 2 {
			fmt.Fprintf(os.Stderr, "%s: usage: %s completion bash|zsh|fish (prints the shell's completion script)\n", name, name)
			os.Exit(2)
		}
		script, err := completionScript(name, args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s\n", name, safeError(err))
			os.Exit(2)
		}
		fmt.Print(script)
		return
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		fmt.Printf("%s %s\n", name, version.String())
		stop()
		return
	}
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		run = nil
		for _, c := range cmds {
			if c.Name == args[0] {
				run = c.Run
			}
		}
		if run == nil {
			fmt.Fprintf(os.Stderr, "%s: %s\n", name, unknownCommand(name, args[0], cmds))
			stop()
			os.Exit(2)
		}
		args = args[1:]
	}
	isDaemon := len(os.Args) == 1+len(args)
	err := run(ctx, os.Stdout, args)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp) && isDaemon:
		// The daemon's --help also lists the client commands.
		commands(os.Stdout, name, cmds)
		return
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(os.Stderr, "%s: %s\n", name, safeError(err))
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %s\n", name, safeError(err))
		os.Exit(1)
	}
}

// unknownCommand says that cmd is none of cmds, with the one likely meant.
func unknownCommand(name, cmd string, cmds []Command) string {
	names := []string{"help", "version"}
	for _, c := range cmds {
		names = append(names, c.Name)
	}
	cmd = ids.CleanLines(cmd, 64)
	if best := Suggest(cmd, names); best != "" {
		return fmt.Sprintf("unknown command %q: did you mean %q?", cmd, best)
	}
	return fmt.Sprintf("unknown command %q (%s help lists the commands)", cmd, name)
}

// usage writes what the command does and its subcommands to w.
func usage(w io.Writer, name, about string, cmds []Command) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s [flags]            run the daemon (see %s --help)\n", about, name, name)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %s %-16s %s\n", name, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "  %s %-16s %s\n", name, "completion SHELL", "print the completion script for bash, zsh or fish")
	fmt.Fprintf(w, "\nEvery command takes --help.\n")
}

// commands lists the client commands under a daemon's flags.
func commands(w io.Writer, name string, cmds []Command) {
	fmt.Fprintf(w, "\nCommands (each takes --help):\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %s %-12s %s\n", name, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "  %s %-12s %s\n", name, "version", "print the version")
	fmt.Fprintf(w, "  %s %-12s %s\n", name, "completion", "print the shell completion script: completion bash|zsh|fish")
}

// Usagef returns a usage error.
func Usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// PrintJSON writes v indented.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// safeError is err's text for a terminal: an error may carry a remote
// daemon's words, so control characters other than line breaks are
// replaced.
func safeError(err error) string {
	msg := err.Error()
	return ids.CleanLines(msg, len(msg))
}
