// Package integration is rbee's end-to-end suite: real binaries built by
// the harness, real processes and real cgroups. Run it with
// `go tool mage test:integration` (as root).
package integration
