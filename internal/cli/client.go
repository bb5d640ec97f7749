package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/auth"
)

// ClientFlags returns the flags of a client subcommand: the daemon's URL
// (flag urlFlag, env urlEnv, default def), the token (--token-file, else
// $RBEE_TOKEN, else the daemon's generated token in --state-dir), --ca and
// --insecure-no-tls; the function builds the API client after parsing.
func ClientFlags(prog, name, urlFlag, urlEnv, def, usage, summary string) (*Flags, func() (*apiclient.Client, error)) {
	fs := NewFlags(prog+" "+name, usage, summary)
	base := fs.String(urlFlag, urlEnv, def, "the daemon's URL; several, comma-separated, are tried in order")
	tokenFile := fs.String("token-file", "RBEE_TOKEN_FILE", "", "file holding the token (or set RBEE_TOKEN; default: the daemon's generated token in --state-dir)")
	stateDir := fs.String("state-dir", "RBEE_STATE_DIR", auth.DefaultStateDir(), "where a daemon on this host keeps its generated token")
	ca := fs.String("ca", "RBEE_CA", "", "PEM file of a private CA that signed the daemon's certificate")
	noTLS := fs.Bool("insecure-no-tls", "RBEE_INSECURE_NO_TLS", false, "allow sending the token over plain HTTP to a non-loopback address")
	return fs, func() (*apiclient.Client, error) {
		tok, err := auth.ClientToken(*tokenFile, *stateDir)
		var why string
		switch {
		case errors.Is(err, auth.ErrNoToken):
			why = err.Error()
			tok = ""
		case err != nil:
			return nil, err
		}
		for _, b := range (&apiclient.Client{Base: *base}).Bases() {
			err := apiclient.CheckBase(b)
			if err == nil && tok != "" {
				err = auth.CheckTransport(b, *noTLS)
			}
			if err != nil {
				return nil, fmt.Errorf("--%s: %w", urlFlag, err)
			}
		}
		hc := &http.Client{Timeout: 60 * time.Second}
		if *ca != "" {
			tc, err := apiclient.ClientTLS(*ca)
			if err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = tc
			hc.Transport = tr
		}
		return &apiclient.Client{Base: *base, Token: tok, HTTP: hc, NoTokenWhy: why}, nil
	}
}

// ParseArgs parses a subcommand's args, flags before or after its
// positional arguments ("logs ID --tail 5"; "--" ends the flags), turning
// a bad flag into a usage error; with maxArgs >= 0, more positional
// arguments are one too.
func ParseArgs(fs *Flags, args []string, maxArgs int) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err // flag.ErrHelp, or a usage error
		}
		rest := fs.FlagSet.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	fs.pos = append([]string{}, pos...)
	if maxArgs >= 0 && fs.NArg() > maxArgs {
		return Usagef("unexpected argument %q", fs.Arg(maxArgs))
	}
	return nil
}

// ParseCommand parses flags up to the first positional argument, which
// starts a command line of its own (spawn's worker and its arguments).
func ParseCommand(fs *Flags, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err // flag.ErrHelp, or a usage error
	}
	return nil
}

// Get builds the client and fetches path's JSON into out.
func Get(ctx context.Context, client func() (*apiclient.Client, error), path string, out any) error {
	c, err := client()
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodGet, path, nil, out)
}
