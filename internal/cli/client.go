package cli

import (
	"context"
	"errors"
	"flag"
	"net/http"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
)

// ClientFlags returns the flags of a client subcommand: the daemon's URL
// (flag urlFlag, env urlEnv, default def) and --token-file; the function
// builds the API client after parsing.
func ClientFlags(prog, name, urlFlag, urlEnv, def, usage, summary string) (*Flags, func() (*api.Client, error)) {
	fs := NewFlags(prog+" "+name, usage, summary)
	base := fs.String(urlFlag, urlEnv, def, "the daemon's URL")
	tokenFile := fs.String("token-file", "RBEE_TOKEN_FILE", "", "file holding the shared token (or set RBEE_TOKEN)")
	return fs, func() (*api.Client, error) {
		tok, err := auth.LoadToken(*tokenFile)
		if err != nil {
			return nil, err
		}
		return &api.Client{Base: *base, Token: tok}, nil
	}
}

// ParseArgs parses a subcommand's args, turning a bad flag into a usage
// error; with maxArgs >= 0, more positional arguments are one too.
func ParseArgs(fs *Flags, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return Usagef("%v", err)
	}
	if maxArgs >= 0 && fs.NArg() > maxArgs {
		return Usagef("unexpected argument %q", fs.Arg(maxArgs))
	}
	return nil
}

// Get builds the client and fetches path's JSON into out.
func Get(ctx context.Context, client func() (*api.Client, error), path string, out any) error {
	c, err := client()
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodGet, path, nil, out)
}
