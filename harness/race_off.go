//go:build !race

package harness

// RaceEnabled is false: the test binary was built without -race.
const RaceEnabled = false
