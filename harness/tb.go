package harness

import (
	"fmt"
	"os"
	"sync"
)

// TB is the part of testing.TB the harness uses. *testing.T and *testing.B
// satisfy it; Scope provides it outside tests (examples, tools).
type TB interface {
	Helper()
	Name() string
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Fatal(args ...any)
	Skipf(format string, args ...any)
	Failed() bool
}

// Scope is a TB for code that is not a test: Close runs the cleanups in
// reverse order; Fatalf, Fatal and Skipf panic with the message after
// marking the scope failed (run Close in a defer).
type Scope struct {
	name string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// NewScope returns a Scope named name.
func NewScope(name string) *Scope { return &Scope{name: name} }

// Close runs the cleanups, newest first.
func (s *Scope) Close() {
	s.mu.Lock()
	cs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

func (s *Scope) Helper()                           {}
func (s *Scope) Name() string                      { return s.name }
func (s *Scope) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (s *Scope) Errorf(format string, args ...any) { s.fail(); s.Logf(format, args...) }
func (s *Scope) Failed() bool                      { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }
func (s *Scope) Fatalf(format string, args ...any) { s.fail(); panic(fmt.Sprintf(format, args...)) }
func (s *Scope) Fatal(args ...any)                 { s.fail(); panic(fmt.Sprint(args...)) }
func (s *Scope) Skipf(format string, args ...any)  { panic("skip: " + fmt.Sprintf(format, args...)) }

func (s *Scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir returns a new directory removed by Close.
func (s *Scope) TempDir() string {
	d, err := os.MkdirTemp("", "rbee-scope-")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (s *Scope) fail() { s.mu.Lock(); s.failed = true; s.mu.Unlock() }
