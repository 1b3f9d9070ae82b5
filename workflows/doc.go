// Package workflows holds the deterministic orchestration: the workflow functions, their
// contract (contract.go: IDs, signals, queries, search attributes, every input, state and
// result), their tests and the recorded histories they must replay.
//
// What runs where: RecordingSession runs one session and starts a DeviceRecording child per
// enclosure; DeviceRecording drives its enclosure through START, recording and COMPLETE, then
// checks the recording's files (files.go); FleetMonitor and Housekeeping are the deployment's
// singletons. Every side effect is an activity (package activities), run by the worker that
// registers them all (package worker). Transitions reach the device workflow from the heartbeat
// path through the outbox, as signals or as the result of the command activity they complete.
//
// Determinism: workflow code is replayed from its history, so it does no I/O and reads no
// clock, randomness or map order of its own: workflow.Now, workflow.Go, workflow.Sleep and
// selectors only, never time.Now, go statements or ranging over a map (make lint runs
// workflowcheck). Activities are called through nil pointers, var a *activities.X and
// a.Method, so the worker's registered instance runs; dbWrite runs the short database ones
// as local activities.
//
// Changing a workflow safely: anything that changes the commands a running workflow issues
// (an activity, timer, signal or child added, removed or reordered), or the payloads it
// exchanges, must be guarded with workflow.GetVersion under a change id of its own (see the
// change* constants), so histories recorded before the change take the old path. Payload
// types keep their field names (JSON) or get a new version. Then re-record the histories in
// testdata with `make record-histories` (it runs the end-to-end tests) and keep the old ones:
// TestReplayRecordedHistories replays them all against today's code.
package workflows
