// Package counter turns two samples of a cumulative counter into a rate:
// the one formula every CPU %, I/O rate and host CPU figure of rbee uses.
package counter

// Rate returns how fast a counter grew between two samples taken seconds
// apart, per second. ok is false when the rate is unknown: no time passed,
// or the counter went backwards (it was reset, or a process left): a rate
// is then null, never a made-up number.
func Rate(prev, cur uint64, seconds float64) (rate float64, ok bool) {
	if seconds <= 0 || cur < prev {
		return 0, false
	}
	return float64(cur-prev) / seconds, true
}

// Share returns, in percent, how much of a total counter's growth a part
// of it grew by (busy CPU time of all CPU time, say). ok is false when the
// total did not grow or either counter went backwards.
func Share(partPrev, partCur, totalPrev, totalCur float64) (pct float64, ok bool) {
	if totalCur <= totalPrev || partCur < partPrev {
		return 0, false
	}
	return (partCur - partPrev) / (totalCur - totalPrev) * 100, true
}
