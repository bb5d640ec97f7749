// Package api is rbee's wire contract: the JSON types that cross a process
// boundary (spawn requests, worker records, heartbeats, the queen's
// answers, stream events), and the HTTP status of each error class
// (internal/errdefs). The client is internal/apiclient.
package api
