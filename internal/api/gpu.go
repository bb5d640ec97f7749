package api

// GPU is the host view of one GPU, sent in every heartbeat.
type GPU struct {
	Index          int      `json:"index"`
	UUID           string   `json:"uuid"`
	Name           string   `json:"name"`
	VRAMTotalBytes *uint64  `json:"vram_total_bytes"`
	VRAMUsedBytes  *uint64  `json:"vram_used_bytes"`
	UtilPct        *float64 `json:"util_pct"`
	TempC          *float64 `json:"temp_c"`
	PowerW         *float64 `json:"power_w"`
}
