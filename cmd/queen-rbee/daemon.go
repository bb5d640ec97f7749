package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/queen"
	"github.com/rbee-dev/rbee/internal/version"
)

func daemon(ctx context.Context, args []string) error {
	fs := cli.NewFlags("queen-rbee", "queen-rbee [flags]",
		"Runs the queen: hives post heartbeats to it; it keeps the registry, marks a hive stale\n"+
			"after 3 missed intervals and removes it after --hive-ttl, answers queries and\n"+
			"streams changes at /v1/heartbeats/stream.")
	listen := fs.String("listen", "RBEE_LISTEN", "127.0.0.1:7833", "address to serve on; port 0 picks a free port")
	ttl := fs.Duration("hive-ttl", "RBEE_HIVE_TTL", 90*time.Second, "remove a silent hive and its workers after this long")
	tokenFile := fs.String("token-file", "RBEE_TOKEN_FILE", "", "file holding the shared token (or set RBEE_TOKEN)")
	insecure := fs.Bool("insecure-no-auth", "RBEE_INSECURE_NO_AUTH", false, "allow a non-loopback --listen without a token")
	tlsCert := fs.String("tls-cert", "RBEE_TLS_CERT", "", "PEM certificate: serve HTTPS (with --tls-key)")
	tlsKey := fs.String("tls-key", "RBEE_TLS_KEY", "", "PEM private key of --tls-cert")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (subcommands: hives, workers, schedule, watch)", fs.Arg(0))
	}
	token, err := auth.LoadToken(*tokenFile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	q, err := queen.New(queen.Config{Listen: *listen, HiveTTL: *ttl, Token: token, Insecure: *insecure, TLSCert: *tlsCert, TLSKey: *tlsKey, Version: version.String(), Logger: log})
	if err != nil {
		return err
	}
	return q.Run(ctx, nil)
}
