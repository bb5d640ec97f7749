package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cli"
)

// dashboardCmd prints the dashboard's URL with the read-only token in its
// fragment (which a browser never sends to the server).
func dashboardCmd(ctx context.Context, out io.Writer, args []string) error {
	fs := cli.NewFlags("queen-rbee dashboard", "queen-rbee dashboard [flags]",
		"Prints the URL of the queen's live dashboard, with the read-only token after #token=\n"+
			"(a URL fragment stays in the browser: the page keeps it in the tab's sessionStorage).")
	fs.Example("queen-rbee dashboard --queen https://queen-a:7833 --ca /etc/rbee/ca.pem")
	base := fs.String("queen", "RBEE_QUEEN", "http://"+api.QueenAddr, "the queen's URL")
	readFile := fs.String("read-token-file", "RBEE_READ_TOKEN_FILE", "", "file holding the read-only token (default: read-token in --state-dir)")
	stateDir := fs.String("state-dir", "RBEE_STATE_DIR", auth.DefaultStateDir(), "where the queen keeps its generated tokens")
	ca := fs.String("ca", "RBEE_CA", "", "PEM file of a private CA that signed the queen's certificate")
	noCheck := fs.Bool("no-check", "", false, "print the URL without asking the queen whether it takes the token")
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
	link := fmt.Sprintf("%s/#token=%s", strings.TrimSuffix(u.String(), "/"), url.QueryEscape(tok))
	if !*noCheck {
		// The stream takes only a read-only token in its URL: ask it, so
		// an operator token (or a wrong one) is caught here, not in the
		// browser's history.
		if err := checkReadToken(ctx, strings.TrimSuffix(u.String(), "/"), tok, *ca); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, link)
	return nil
}

// checkReadToken opens the queen's stream with tok as the page will, and
// closes it at once.
func checkReadToken(ctx context.Context, base, tok, ca string) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	if ca != "" {
		tc, err := apiclient.ClientTLS(ca)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/heartbeats/stream?types=queen&access_token="+url.QueryEscape(tok), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("check the token with the queen (--no-check skips it): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&eb)
		return fmt.Errorf("the queen refuses this token in the dashboard's URL: %s %s", resp.Status, eb.Error)
	}
	return nil
}

var errNotExist = iofs.ErrNotExist
