package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
)

// DefaultTopInterval is how often a top view redraws: the hives' own
// interval, by default.
const DefaultTopInterval = time.Second

// TopConfig is a live top view's settings.
type TopConfig struct {
	Source   string
	Fleet    bool
	Sort     string
	Interval time.Duration
	// Once prints one frame, without terminal control, and returns: for
	// scripts and for a pipe.
	Once bool
	// Fetch returns the workers to show.
	Fetch func(ctx context.Context) ([]api.FleetWorker, error)
}

// RunTop shows the view until ctx ends or q (or Ctrl-C) is pressed: on a
// terminal it redraws in place and reads sort keys; elsewhere (a pipe,
// --once) it prints frames one after another.
func RunTop(ctx context.Context, out io.Writer, cfg TopConfig) error {
	f, isFile := out.(*os.File)
	tty := !cfg.Once && isFile && term.IsTerminal(int(f.Fd())) && term.IsTerminal(int(os.Stdin.Fd()))
	keys := make(chan byte, 8)
	if tty {
		old, err := term.MakeRaw(int(os.Stdin.Fd()))
		if err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		defer term.Restore(int(os.Stdin.Fd()), old)
		fmt.Fprint(out, "\033[?1049h\033[?25l")       // the alternate screen, no cursor
		defer fmt.Fprint(out, "\033[?25h\033[?1049l") // as it was
		go readKeys(keys)
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	var last []api.FleetWorker
	var lastErr string
	fetch := true
	for {
		if fetch {
			ws, err := cfg.Fetch(ctx)
			if ctx.Err() != nil {
				return nil
			}
			lastErr = ""
			if err != nil {
				if cfg.Once {
					return err
				}
				lastErr = err.Error()
			} else {
				last = ws
			}
		}
		width := 80
		if tty {
			if w, _, err := term.GetSize(int(f.Fd())); err == nil {
				width = w
			}
		}
		frame := TopFrame(TopView{Source: cfg.Source, At: time.Now(), Workers: last, Fleet: cfg.Fleet, Sort: cfg.Sort, Width: width, Err: lastErr})
		if tty {
			frame = "\033[H\033[2J" + strings.ReplaceAll(frame, "\n", "\r\n")
		}
		if _, err := io.WriteString(out, frame); err != nil {
			return err
		}
		if cfg.Once {
			return nil
		}
		if !tty {
			fmt.Fprintln(out)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			fetch = true
		case k := <-keys:
			if k == 'q' || k == 3 || k == 4 { // q, Ctrl-C, Ctrl-D
				return nil
			}
			if s, ok := TopSorts[k]; ok {
				cfg.Sort = s
			}
			fetch = false // redraw at once, in the new order
		}
	}
}

// readKeys sends each byte typed; it ends with stdin.
func readKeys(keys chan<- byte) {
	var b [1]byte
	for {
		if n, err := os.Stdin.Read(b[:]); err != nil || n == 0 {
			return
		}
		keys <- b[0]
	}
}

// TopCommand is the top subcommand of both CLIs: fs (with the client's
// flags) gains --interval, --once and --sort; fetch reads the workers
// through the daemon's client; fleet adds the HIVE column.
func TopCommand(ctx context.Context, out io.Writer, args []string, fs *Flags, client func() (*apiclient.Client, error), fleet bool,
	fetch func(context.Context, *apiclient.Client) ([]api.FleetWorker, error)) error {
	interval := fs.Duration("interval", "", DefaultTopInterval, "time between frames")
	once := fs.Bool("once", "", false, "print one frame and exit")
	sortBy := fs.String("sort", "", "cpu", "the first order: cpu, mem, gpu, vram, restarts or id")
	if err := ParseArgs(fs, args, 0); err != nil {
		return err
	}
	order, err := TopSort(*sortBy)
	if err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	return RunTop(ctx, out, TopConfig{Source: c.Base, Fleet: fleet, Sort: order, Interval: *interval, Once: *once,
		Fetch: func(ctx context.Context) ([]api.FleetWorker, error) { return fetch(ctx, c) }})
}
