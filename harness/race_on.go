//go:build race

package harness

// RaceEnabled is true when the test binary was built with -race; the
// daemons it builds get -race too.
const RaceEnabled = true
