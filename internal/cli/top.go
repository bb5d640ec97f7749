package cli

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// TopSorts are the orders a top view takes, by key: the key pressed (or
// --sort's value's first letter) picks one.
var TopSorts = map[byte]string{'c': "cpu", 'm': "mem", 'g': "gpu", 'v': "vram", 'r': "restarts", 'i': "id"}

// TopView is what one frame of a top view shows.
type TopView struct {
	Source  string // the daemon's URL, for the title
	At      time.Time
	Workers []api.FleetWorker
	Fleet   bool   // several hives: a HIVE column
	Sort    string // one of TopSorts' values
	Width   int    // the terminal's columns; under 80 counts as 80
	Err     string // the last fetch's failure, said under the title
}

// topColumn is one column of the table: its title, width and cell.
type topColumn struct {
	title string
	width int
	cell  func(w *api.FleetWorker) string
}

// TopFrame renders one frame of a live worker view, as docker stats and
// nvtop do: running workers, busiest first by v.Sort, each figure beside
// its limit, fitted to v.Width (the model name takes what is left). The
// demo's live view and both CLIs' top draw it.
func TopFrame(v TopView) string {
	running, exited := WithoutExited(v.Workers)
	sortWorkers(running, v.Sort)
	cols := []topColumn{
		{"ID", 12, func(w *api.FleetWorker) string { return ids.Safe(w.ID) }},
		{"STATE", 9, func(w *api.FleetWorker) string { return ids.Safe(string(w.State)) }},
		{"CPU%/LIM", 9, func(w *api.FleetWorker) string { return cpuCell(w) }},
		{"MEM/LIM", 11, func(w *api.FleetWorker) string { return memCell(w) }},
		{"GPU%", 5, func(w *api.FleetWorker) string { return Pct(w.GPUUtilPct) }},
		{"VRAM", 6, func(w *api.FleetWorker) string { return shortBytes(w.VRAMBytes) }},
		{"RST", 3, func(w *api.FleetWorker) string { return fmt.Sprint(w.Restarts) }},
		{"UP", 6, func(w *api.FleetWorker) string { return Secs(w.UptimeS) }},
	}
	if v.Fleet {
		cols = append([]topColumn{{"HIVE", 9, func(w *api.FleetWorker) string { return ids.Safe(w.HiveID) }}}, cols...)
	}
	width := max(v.Width, 80)
	used := 0
	for _, c := range cols {
		used += c.width + 1
	}
	if left := width - used; left >= 8 { // else the model is in list's
		cols = append(cols, topColumn{"MODEL", left, func(w *api.FleetWorker) string { return Str(w.Model) }})
	}

	var b strings.Builder
	hives := map[string]bool{}
	for _, w := range v.Workers {
		hives[w.HiveID] = true
	}
	title := fmt.Sprintf("rbee top  %s  %s  %d running", ids.Safe(v.Source), v.At.Format("15:04:05"), len(running))
	if v.Fleet {
		title += fmt.Sprintf(" on %s", count(len(hives), "hive"))
	}
	if exited > 0 {
		title += fmt.Sprintf(", %d exited", exited)
	}
	b.WriteString(fit(title, width) + "\n")
	b.WriteString(fit("sort: "+v.Sort+"   keys: c cpu  m mem  g gpu  v vram  r restarts  i id  q quit", width) + "\n")
	if v.Err != "" {
		b.WriteString(fit("! "+ids.Safe(v.Err), width) + "\n")
	}
	b.WriteString("\n")
	row := func(cell func(c topColumn) string) {
		var line strings.Builder
		for i, c := range cols {
			s := fit(cell(c), c.width)
			if i < len(cols)-1 {
				s = fmt.Sprintf("%-*s ", c.width, s)
			}
			line.WriteString(s)
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	row(func(c topColumn) string { return c.title })
	for i := range running {
		row(func(c topColumn) string { return c.cell(&running[i]) })
	}
	if len(running) == 0 {
		b.WriteString("(no worker running)\n")
	}
	return b.String()
}

// cpuCell is a worker's CPU % against its limit: "45.0/250".
func cpuCell(w *api.FleetWorker) string {
	s := Pct(w.CPUPct)
	if w.CPULimitPct != nil {
		s += fmt.Sprintf("/%.0f", *w.CPULimitPct)
	}
	return s
}

// memCell is a worker's memory against its limit: "1.2G/24G".
func memCell(w *api.FleetWorker) string {
	s := shortBytes(w.MemBytes)
	if w.MemLimitBytes != nil && *w.MemLimitBytes > 0 {
		s += "/" + shortBytes(api.Ptr(uint64(*w.MemLimitBytes)))
	}
	return s
}

// shortBytes is a byte count in at most 5 columns, binary units with
// their first letter ("512M", "1.2G", "24G"), "-" when unknown.
func shortBytes(v *uint64) string {
	if v == nil {
		return "-"
	}
	f := float64(*v)
	for _, u := range []string{"B", "K", "M", "G", "T"} {
		if f < 1024 || u == "T" {
			if f < 10 && u != "B" {
				return fmt.Sprintf("%.1f%s", f, u)
			}
			return fmt.Sprintf("%.0f%s", f, u)
		}
		f /= 1024
	}
	return "-"
}

// fit cuts s to n columns, marking a cut with "…".
func fit(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// sortWorkers orders ws by key, the largest first (id: alphabetical),
// unknown figures last and ties by id.
func sortWorkers(ws []api.FleetWorker, key string) {
	val := func(w *api.FleetWorker) float64 {
		switch key {
		case "cpu":
			return orMinus(w.CPUPct)
		case "mem":
			return countOrMinus(w.MemBytes)
		case "gpu":
			return orMinus(w.GPUUtilPct)
		case "vram":
			return countOrMinus(w.VRAMBytes)
		case "restarts":
			return float64(w.Restarts)
		}
		return 0
	}
	slices.SortStableFunc(ws, func(a, b api.FleetWorker) int {
		if c := cmp.Compare(val(&b), val(&a)); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.HiveID, b.HiveID), strings.Compare(a.ID, b.ID))
	})
}

func orMinus(v *float64) float64 {
	if v == nil {
		return -1
	}
	return *v
}

func countOrMinus(v *uint64) float64 {
	if v == nil {
		return -1
	}
	return float64(*v)
}

// TopSort returns the sort a --sort value names ("cpu", or its first
// letter), or an error listing them.
func TopSort(s string) (string, error) {
	if s != "" {
		if name, ok := TopSorts[s[0]]; ok && strings.HasPrefix(name, s) {
			return name, nil
		}
	}
	return "", Usagef("--sort %q: want cpu, mem, gpu, vram, restarts or id", s)
}
