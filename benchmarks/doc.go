// Package benchmarks holds rbee's performance benchmarks. Each one that
// makes a claim measures its baseline in the same run, so the result is a
// ratio that survives a noisy shared machine; `go tool mage bench` runs
// them repeatedly and compares them with benchstat.
package benchmarks
