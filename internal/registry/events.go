package registry

// Event is one change of the registry.
type Event struct {
	Type string
	// Hive is the hive the event is about; hive_telemetry events of the
	// same hive may be coalesced for a slow reader.
	Hive string
	// Models are the models the event concerns (a worker's; the models
	// of a hive's workers for its telemetry), for the stream's ?model=.
	Models []string
	Data   any
	// View, when set, returns Data as a client filtering on one model
	// sees it (only that model's workers); nil means Data for everyone.
	View func(model string) any
}
