package cli

import (
	"log/slog"
	"path/filepath"

	"github.com/rbee-dev/rbee/internal/auth"
)

// TokenFlags are a daemon's credential flags.
type TokenFlags struct {
	File, ReadFile, StateDir string
	Insecure                 bool
	// ReadInStateDir makes a read-only token in the state directory,
	// beside a generated operator token, when ReadFile is not set (the
	// queen: its dashboard needs one).
	ReadInStateDir bool
}

// DaemonTokens resolves a daemon's tokens and says in the log where the
// operator token lives: --token-file, $RBEE_TOKEN, or the one generated in
// the state directory. --insecure-no-auth gives none and warns.
func DaemonTokens(log *slog.Logger, f TokenFlags) (auth.Tokens, error) {
	var t auth.Tokens
	if f.Insecure {
		log.Warn("--insecure-no-auth: anyone who can reach this daemon, every local user and every web page in a browser on this host included, may use all of its API")
		return t, nil
	}
	tok, src, err := auth.OperatorToken(f.File, f.StateDir)
	if err != nil {
		return t, err
	}
	t.Operator = tok
	switch {
	case src.Created:
		log.Info("created an operator token; the client commands on this host read it from there", "token_file", src.Path)
	case src.Path == "":
		log.Info("operator token from " + auth.EnvToken)
	default:
		log.Info("operator token", "token_file", src.Path)
	}
	switch {
	case f.ReadFile != "":
		if t.Reader, err = auth.ReadTokenFile(f.ReadFile); err != nil {
			return t, err
		}
	case f.ReadInStateDir && f.File == "" && src.Path != "":
		// Fully default credentials: a read-only token beside the
		// operator's, for the dashboard and Prometheus.
		rsrc := auth.Source{}
		if t.Reader, rsrc, err = auth.StateToken(filepath.Dir(src.Path), auth.ReadTokenFileName); err != nil {
			return t, err
		}
		if rsrc.Created {
			log.Info("created a read-only token for dashboards and Prometheus", "token_file", rsrc.Path)
		}
	}
	return t, nil
}
