package cli

// Suggest returns the candidate closest to what a user typed when it is
// close enough to be what was meant (a typo or two, a prefix), else "".
func Suggest(typed string, candidates []string) string {
	best, bestD := "", 3 // more than two edits away is another word
	if len(typed) <= 3 {
		bestD = 2
	}
	for _, c := range candidates {
		d := editDistance(typed, c)
		if len(typed) >= 3 && len(c) > len(typed) && c[:len(typed)] == typed {
			d = min(d, 1) // a prefix: --mem for --memory-limit
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance of a and b (optimal
// string alignment: an adjacent swap counts once), byte-wise: flag and
// command names are ASCII.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
