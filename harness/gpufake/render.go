package gpufake

import (
	"fmt"
	"io"
	"strings"
	"time"
)

func (s Scenario) driver() string { return or(s.Driver, "580.159.04") }
func (s Scenario) cuda() string   { return or(s.CUDA, "13.0") }

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (g GPU) free() int {
	if g.MemFreeMiB != 0 {
		return g.MemFreeMiB
	}
	return g.MemTotalMiB - g.MemUsedMiB
}

func (s Scenario) uuidOf(index int) string {
	for _, g := range s.GPUs {
		if g.Index == index {
			return g.UUID
		}
	}
	return "GPU-00000000-0000-0000-0000-000000000000"
}

// QueryGPU writes `--query-gpu=index,uuid,name,memory.total,memory.used,
// memory.free,utilization.gpu,utilization.memory,temperature.gpu,power.draw`
// output; units adds the header and the units, as --format=csv does.
func QueryGPU(w io.Writer, s Scenario, units bool) {
	if units {
		fmt.Fprintln(w, "index, uuid, name, memory.total [MiB], memory.used [MiB], memory.free [MiB], utilization.gpu [%], utilization.memory [%], temperature.gpu, power.draw [W]")
	}
	for _, g := range s.GPUs {
		if units {
			fmt.Fprintf(w, "%d, %s, %s, %d MiB, %d MiB, %d MiB, %d %%, %d %%, %d, %.2f W\n",
				g.Index, g.UUID, g.Name, g.MemTotalMiB, g.MemUsedMiB, g.free(), g.UtilPct, g.MemUtilPct, g.TempC, g.PowerW)
			continue
		}
		fmt.Fprintf(w, "%d, %s, %s, %d, %d, %d, %d, %d, %d, %.2f\n",
			g.Index, g.UUID, g.Name, g.MemTotalMiB, g.MemUsedMiB, g.free(), g.UtilPct, g.MemUtilPct, g.TempC, g.PowerW)
	}
}

// ComputeApps writes `--query-compute-apps=pid,process_name,used_memory,
// gpu_uuid` output (nothing at all when there are no processes).
func ComputeApps(w io.Writer, s Scenario, units bool) {
	if units {
		fmt.Fprintln(w, "pid, process_name, used_gpu_memory [MiB], gpu_uuid")
	}
	for _, p := range s.Procs {
		if units {
			fmt.Fprintf(w, "%d, %s, %d MiB, %s\n", p.PID, p.Name, p.UsedMiB, s.uuidOf(p.GPU))
			continue
		}
		fmt.Fprintf(w, "%d, %s, %d, %s\n", p.PID, p.Name, p.UsedMiB, s.uuidOf(p.GPU))
	}
}

// Pmon writes `pmon -c 1 -s um` output.
func Pmon(w io.Writer, s Scenario) {
	fmt.Fprintln(w, "# gpu         pid   type     sm    mem    enc    dec    jpg    ofa     fb   ccpm    command ")
	fmt.Fprintln(w, "# Idx           #    C/G      %      %      %      %      %      %     MB     MB    name ")
	dash := func(v *int) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	for _, g := range s.GPUs {
		any := false
		for _, p := range s.Procs {
			if p.GPU != g.Index {
				continue
			}
			any = true
			fmt.Fprintf(w, "%5d %10d %5s %6s %6s %6s %6s %6s %6s %6d %6d    %-15s\n",
				g.Index, p.PID, "C", dash(p.SMPct), dash(p.MemPct), "-", "-", "-", "-", p.UsedMiB, 0, p.Name)
		}
		if !any {
			fmt.Fprintf(w, "%5d %10s %5s %6s %6s %6s %6s %6s %6s %6s %6s    %-15s\n", g.Index, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-")
		}
	}
}

// List writes `nvidia-smi -L` output.
func List(w io.Writer, s Scenario) {
	for _, g := range s.GPUs {
		fmt.Fprintf(w, "GPU %d: %s (UUID: %s)\n", g.Index, g.Name, g.UUID)
	}
}

// Table writes the plain `nvidia-smi` table.
func Table(w io.Writer, s Scenario, now time.Time) {
	if s.Time != "" {
		if t, err := time.Parse(time.RFC3339, s.Time); err == nil {
			now = t
		}
	}
	full := "+" + strings.Repeat("-", 89) + "+"
	split := "+" + strings.Repeat("-", 41) + "+" + strings.Repeat("-", 24) + "+" + strings.Repeat("-", 22) + "+"
	fmt.Fprintf(w, "%s       \n", now.Format("Mon Jan _2 15:04:05 2006"))
	fmt.Fprintln(w, full)
	fmt.Fprintf(w, "| NVIDIA-SMI %-23sDriver Version: %-15sCUDA Version: %-9s|\n", s.driver(), s.driver(), s.cuda())
	fmt.Fprintln(w, split)
	fmt.Fprintln(w, "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |")
	fmt.Fprintln(w, "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |")
	fmt.Fprintln(w, "|                                         |                        |               MIG M. |")
	fmt.Fprintln(w, "|"+strings.Repeat("=", 41)+"+"+strings.Repeat("=", 24)+"+"+strings.Repeat("=", 22)+"|")
	for _, g := range s.GPUs {
		capW := g.PowerCapW
		if capW == 0 {
			capW = 700
		}
		fmt.Fprintf(w, "|%4d  %-31sOn  |   %-16s Off |%21s |\n", g.Index, g.Name, or(g.BusID, "00000000:00:06.0"), "0")
		fmt.Fprintf(w, "| N/A%5dC    P0%15dW / %4dW |%8dMiB / %6dMiB |%7d%%      Default |\n",
			g.TempC, int(g.PowerW+0.5), capW, g.MemUsedMiB, g.MemTotalMiB, g.UtilPct)
		fmt.Fprintf(w, "|%41s|%24s|%21s |\n", "", "", "Disabled")
		fmt.Fprintln(w, split)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, full)
	fmt.Fprintf(w, "|%-89s|\n", " Processes:")
	fmt.Fprintln(w, "|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |")
	fmt.Fprintln(w, "|        ID   ID                                                               Usage      |")
	fmt.Fprintln(w, "|"+strings.Repeat("=", 89)+"|")
	if len(s.Procs) == 0 {
		fmt.Fprintf(w, "|%-89s|\n", "  No running processes found")
	}
	for _, p := range s.Procs {
		fmt.Fprintf(w, "|%5d   N/A  N/A%16d      C   %-38s%8s |\n", p.GPU, p.PID, p.Name, fmt.Sprintf("%dMiB", p.UsedMiB))
	}
	fmt.Fprintln(w, full)
}
