package api

// The daemons' default addresses: each daemon listens there unless told
// otherwise, and the client commands and a hive look for it there.
const (
	// QueenAddr is queen-rbee's default --listen.
	QueenAddr = "127.0.0.1:7833"
	// HiveAddr is rbee-hive's default --listen.
	HiveAddr = "127.0.0.1:7835"
)
