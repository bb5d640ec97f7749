package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cli"
)

// dashboardCmd prints the dashboard's URL with the read-only token in its
// fragment (which a browser never sends to the server).
func dashboardCmd(ctx context.Context, out io.Writer, args []string) error {
	fs := cli.NewFlags("queen-rbee dashboard", "queen-rbee dashboard [flags]",
		"Prints the URL of the queen's live dashboard, with the read-only token after #token=\n"+
			"(a URL fragment stays in the browser: the page keeps it in the tab's sessionStorage).")
	base := fs.String("queen", "RBEE_QUEEN", "http://127.0.0.1:7833", "the queen's URL")
	readFile := fs.String("read-token-file", "RBEE_READ_TOKEN_FILE", "", "file holding the read-only token (default: read-token in --state-dir)")
	stateDir := fs.String("state-dir", "RBEE_STATE_DIR", auth.DefaultStateDir(), "where the queen keeps its generated tokens")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return cli.Usagef("--queen %q: want http(s)://host:port", *base)
	}
	path := *readFile
	if path == "" {
		path = filepath.Join(*stateDir, auth.ReadTokenFileName)
	}
	tok, err := auth.ReadTokenFile(path)
	if err != nil {
		if errors.Is(err, errNotExist) {
			fmt.Fprintf(out, "%s/\n", strings.TrimSuffix(u.String(), "/"))
			return fmt.Errorf("no read-only token at %s (the queen makes one there when it generates its operator token; else pass --read-token-file): the page will ask for one", path)
		}
		return err
	}
	fmt.Fprintf(out, "%s/#token=%s\n", strings.TrimSuffix(u.String(), "/"), url.QueryEscape(tok))
	return nil
}

var errNotExist = iofs.ErrNotExist
