// Package activities holds every side effect the workflows cause: the enclosures' command
// mailbox (SendStart, SendStop, SendComplete: the heartbeat path completes them through the
// outbox), the session read model, the file checks (hashing from storage), the fleet scan and
// housekeeping.
//
// Each activity struct depends on narrow interfaces it declares, in types of its own
// (DeviceUpdate, SessionPlan, FileResult, KnownFile, Orphan) with the recording vocabulary
// (internal/recording) for statuses and events; worker.StoreDeps adapts the store to them. So
// the workflows, which import this package, never depend on the store, and a payload's fields
// mean the same in every layer.
//
// Inputs and results are payloads recorded in workflow histories: keep their field names and
// JSON, or change them behind workflow.GetVersion (see package workflows). Activities run
// outside the workflow's determinism rules, but may run more than once (retries): each is
// safe to repeat, except Sessions.CreateSession (a retry after a lost reply creates a second
// session; its caller checks first). The short database writes are run as local activities
// (workflows.dbWrite).
package activities
