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
}
