package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/privdir"
)

// Worker logs. A worker's stdout and stderr are a file the hive opened
// (append only, owned by the hive): the worker writes straight to it, so
// it is never slowed nor blocked by the hive, and the file outlives a
// hive restart. The hive bounds it by copy and truncate: when it reaches
// the size bound, its bytes move to <id>.log.1 (older ones shifting up to
// the file count) and it is emptied; the worker's appends go on at its
// new end. A restart of the worker moves the last run's log to
// <id>.previous.log.

const (
	// DefaultLogMaxSize and DefaultLogFiles bound a run's log.
	DefaultLogMaxSize = 64 << 20
	DefaultLogFiles   = 2
	// logCheckEvery is how often the size is checked besides at each
	// write inotify reports.
	logCheckEvery = 250 * time.Millisecond
	// ExitTailBytes bounds the output an exit carries.
	ExitTailBytes = 4096
)

// logFiles names a worker's log files in the log directory. Every file
// is reached through the directory's descriptor (internal/privdir): the
// hive runs as root, and nothing planted there (a link, a FIFO, a file of
// another user) may make it read or write another file.
type logFiles struct {
	d  *privdir.Dir
	id string
}

func (p logFiles) current() string      { return p.id + ".log" }
func (p logFiles) rotated(n int) string { return p.current() + "." + strconv.Itoa(n) }
func (p logFiles) previous() string     { return p.id + ".previous.log" }

// run returns the files of the current run, oldest first.
func (p logFiles) run(files int) []string {
	var out []string
	for n := files - 1; n >= 1; n-- {
		out = append(out, p.rotated(n))
	}
	return append(out, p.current())
}

// startRun makes room for a new run of a worker: the last run's log (and
// its rotations) becomes the previous one. Run before create.
func (p logFiles) startRun(files int) error {
	if !p.d.Exists(p.current()) {
		return nil
	}
	// The previous run's whole output, in order, into one new file.
	tmp, name, err := p.d.CreateTemp(".previous-", 0o640)
	if err != nil {
		return fmt.Errorf("keep previous log: %w", err)
	}
	defer p.d.Remove(name)
	for _, f := range p.run(files) {
		if err := p.appendTo(tmp, f); err != nil {
			tmp.Close()
			return fmt.Errorf("keep previous log: %w", err)
		}
		if err := p.d.Remove(f); err != nil {
			tmp.Close()
			return fmt.Errorf("keep previous log: %w", err)
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return p.d.Rename(name, p.previous())
}

// appendTo copies the log file name to dst; a missing one is empty.
func (p logFiles) appendTo(dst *os.File, name string) error {
	f, err := p.d.Open(name, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(dst, f)
	return err
}

// create makes the log of a new run, for the worker to append to. It
// fails when anything has its name: startRun moved the last one away.
func (p logFiles) create() (*os.File, error) {
	f, err := p.d.Create(p.current(), os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open worker log: %w", err)
	}
	return f, nil
}

// guardLog keeps a worker's log within maxSize per file until done: at
// every write it is told of (inotify), and every logCheckEvery.
func (m *Monitor) guardLog(p logFiles, f *os.File, done <-chan struct{}) {
	defer m.wg.Done()
	defer f.Close()
	t := time.NewTicker(logCheckEvery)
	defer t.Stop()
	wake, stop, err := watchWrites(f)
	if err != nil {
		m.log.Debug("worker log: polling only", "err", err)
	} else {
		defer stop()
	}
	g := &logGuard{m: m, p: p, f: f}
	for {
		select {
		case <-wake:
			g.check()
		case <-done:
			g.check()
			return
		case <-m.closed:
			return
		case <-t.C:
			g.check()
		}
	}
}

// logGuard is one worker log's rotation state.
type logGuard struct {
	m        *Monitor
	p        logFiles
	f        *os.File
	lastCopy time.Time
	dropped  int64
	warned   time.Time
}

// rotateSlack is how far past the bound a rotated file may run: the
// writes that came in while the guard woke.
const rotateSlack = 64 << 10

// minCopyEvery bounds how often a log is copied aside: a worker printing
// a gigabyte a second would otherwise keep the hive copying.
const minCopyEvery = 50 * time.Millisecond

// check rotates a full log: its last bytes move to <id>.log.1 (older ones
// shift up) and it is emptied. A worker filling it faster than a copy
// every minCopyEvery has the excess dropped beyond 4 times the bound, so
// the disk use stays bounded whatever it prints.
func (g *logGuard) check() {
	m, p, f := g.m, g.p, g.f
	st, err := f.Stat()
	if err != nil || st.Size() < m.logMaxSize {
		return
	}
	if time.Since(g.lastCopy) < minCopyEvery {
		if st.Size() < 4*m.logMaxSize {
			return
		}
		if err := f.Truncate(0); err == nil {
			g.dropped += st.Size()
			if time.Since(g.warned) > time.Minute {
				g.warned = time.Now()
				m.log.Warn("worker prints faster than its log keeps: output dropped", "file", p.d.Join(p.current()), "dropped_bytes", g.dropped)
			}
		}
		return
	}
	g.lastCopy = time.Now()
	files := m.logFiles
	for n := files - 1; n > 1; n-- {
		if p.d.Exists(p.rotated(n - 1)) {
			_ = p.d.Rename(p.rotated(n-1), p.rotated(n))
		}
	}
	if files > 1 {
		// The whole file when it ran at most rotateSlack past the bound
		// (a follower's offset in it is then an offset in .1), else its
		// last bytes: the disk bound holds either way.
		if err := p.copyTo(p.rotated(1), f, m.logMaxSize+rotateSlack); err != nil {
			m.log.Warn("rotate worker log", "file", p.d.Join(p.current()), "err", err)
		}
	}
	if err := f.Truncate(0); err != nil {
		m.log.Warn("truncate worker log", "file", p.d.Join(p.current()), "err", err)
	}
}

// copyTo writes the last limit bytes of src to the file name, through a
// new file of a random name and a rename: whatever had that name (a
// planted link) is replaced, never written.
func (p logFiles) copyTo(name string, src *os.File, limit int64) error {
	st, err := src.Stat()
	if err != nil {
		return err
	}
	off := max(0, st.Size()-limit)
	dst, tmp, err := p.d.CreateTemp(".rotate-", 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, off, st.Size()-off))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = p.d.Rename(tmp, name)
	}
	if err != nil {
		_ = p.d.Remove(tmp)
	}
	return err
}

// tailOf returns the last max bytes of a worker's current log, from a
// line start when it can.
func tailOf(p logFiles, files int, max int) string {
	var buf []byte
	for _, f := range p.run(files) {
		b, err := p.readTail(f, max)
		if err == nil {
			buf = append(buf, b...)
		}
	}
	if len(buf) > max {
		buf = buf[len(buf)-max:]
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && i < len(buf)-1 {
			buf = buf[i+1:]
		}
	}
	return string(bytes.ToValidUTF8(buf, []byte("?")))
}

// readTail returns the last limit bytes of the log file name.
func (p logFiles) readTail(name string, limit int) ([]byte, error) {
	f, err := p.d.Open(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, st.Size()-int64(limit))
	b := make([]byte, st.Size()-off)
	n, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// LogRequest asks for a worker's output.
type LogRequest struct {
	// Tail is how many of the last lines to start with; 0 means 100.
	Tail int
	// Previous reads the run before the last restart.
	Previous bool
	// Follow keeps writing what the worker prints until it exits or ctx
	// ends.
	Follow bool
}

// ErrNoLogs: the hive keeps no logs (no --worker-log-dir), or none of
// that run.
var ErrNoLogs = api.Class(api.ErrNotFound, "no logs")

// Logs writes a worker's output to w: its last lines, then, following,
// what it prints, across rotations, until it exits or ctx ends.
func (m *Monitor) Logs(ctx context.Context, id string, req LogRequest, w io.Writer) error {
	if err := ids.ValidWorkerID(id); err != nil {
		return api.Errorf(api.ErrInvalid, "worker id %s: %v", ids.Quote(id), err)
	}
	if m.cfg.Logs == nil {
		return fmt.Errorf("%w: this hive discards its workers' output (--worker-log-dir \"\", or a default log directory it could not use: its log says which)", ErrNoLogs)
	}
	m.mu.Lock()
	wk, ok := m.workers[id]
	m.mu.Unlock()
	p := logFiles{m.cfg.Logs, id}
	if !ok && !p.d.Exists(p.current()) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if req.Tail <= 0 {
		req.Tail = 100
	}
	files := p.run(m.logFiles)
	if req.Previous {
		files = []string{p.previous()}
		if !p.d.Exists(p.previous()) {
			return fmt.Errorf("%w: %s has no previous run", ErrNoLogs, id)
		}
	}
	var all []byte
	for _, f := range files {
		// The last lines only: a run's log is bounded, but not small.
		b, err := p.readTail(f, 1<<20)
		switch {
		case err == nil:
			all = append(all, b...)
		case !errors.Is(err, fs.ErrNotExist):
			// Something the hive did not make is where a log goes.
			m.log.Warn("worker log refused", "worker", id, "err", err)
			return fmt.Errorf("read the log of %s: %w", id, err)
		}
	}
	if _, err := w.Write(lastLines(all, req.Tail)); err != nil {
		return err
	}
	if !req.Follow || req.Previous || !ok {
		return nil
	}
	return m.follow(ctx, wk, p, w)
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	i := end
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			return b
		}
	}
	if i <= 0 {
		return b
	}
	return b[i+1:]
}

// follow writes what is appended to path until the worker exits (and its
// last bytes are written) or ctx ends. A truncation (a rotation) starts
// it again from the top of the emptied file.
func (m *Monitor) follow(ctx context.Context, wk *worker, p logFiles, w io.Writer) error {
	f, err := p.d.Open(p.current(), os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	off := st.Size()
	flusher, _ := w.(interface{ Flush() })
	buf := make([]byte, 64<<10)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		exited := false
		select {
		case <-ctx.Done():
			return nil
		case <-wk.done:
			exited = true
		case <-t.C:
		}
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.Size() < off {
			// Rotated: the file's bytes went to <id>.log.1 and it was
			// emptied. What came after our offset is read from there.
			if r, err := p.d.Open(p.rotated(1), os.O_RDONLY); err == nil {
				if rs, err := r.Stat(); err == nil && rs.Size() > off {
					if _, err := io.Copy(w, io.NewSectionReader(r, off, rs.Size()-off)); err != nil {
						r.Close()
						return err
					}
				}
				r.Close()
			}
			off = 0
		}
		for off < st.Size() {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), st.Size()-off)], off)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
				off += int64(n)
			}
			if err != nil {
				break
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		if exited {
			return nil
		}
	}
}
