// Package recording is the recording vocabulary every layer shares: the statuses of a
// session, of an enclosure's part in it, of the fleet and of a recording's files; the
// handshake's phases and the transitions (Event) the device workflow receives; and the START
// parameters with their one builder (Plan.Start).
//
// It imports the standard library only, so the wire format (protocol), the heartbeat rules
// (internal/heartbeat), the store, the API, the activities and the workflows can all speak it
// without depending on one another. The types are strings and plain structs: their JSON is
// what recorded workflow histories and outbox rows already hold, and must stay so.
package recording
