package registry

// Event is one change of the registry.
type Event struct {
	Type string
	// Hive is the hive the event is about; hive_telemetry events of the
	// same hive may be coalesced for a slow reader.
	Hive string
	Data any
}
