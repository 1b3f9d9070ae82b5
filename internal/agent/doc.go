// Package agent is the upload agent that runs on each enclosure beside the unmodified C++
// client (mba agent). It asks the server which recording sessions the enclosure has and which
// files they must produce (GET /api/agent/manifest), finds the client's files under the video
// directory by its naming convention (PROTOCOL.md section 6), waits until each one is finished,
// and uploads it with its SHA-256 and size, resumably, over tus 1.0.
//
// # Why tus, and why our own client
//
// tus 1.0 is a small, documented, widely implemented protocol for resumable uploads: the server
// confirms how many bytes it holds (HEAD, Upload-Offset) and the client continues from exactly
// there (PATCH), so a dropped connection, a server restart or an agent restart never re-sends
// confirmed bytes and never starts over. The server side uses tusd (github.com/tus/tusd/v2),
// the protocol's reference server, which is well kept; any tus client can upload to it.
//
// The client side is written here rather than imported: the Go tus client libraries on the
// module proxy (eventials/go-tus and its forks) are unmaintained, and what the agent needs is
// small: core (HEAD, PATCH), creation (POST with Upload-Length and Upload-Metadata) and
// termination (DELETE, to drop an upload whose file changed under it). The client streams
// every PATCH body from disk in chunks of at most Config.ChunkBytes, so files of tens of GB are
// never held in memory.
//
// # What is uploaded
//
// A file belongs to a session of the manifest when its name is exactly one of the session's
// prefixes followed by ".avi" (fragment_hourly=false), "<YYYY-MM-DD_HH-MM-SS>.avi"
// (fragment_hourly=true), "timestamps.txt" or "start_timestamp.txt", it lies in a date
// directory between the local date of the session start (minus a day) and its end (or today),
// and it was last modified after the session started (less Config.ClockSlack). It is finished
// when a later hourly fragment of the same prefix exists, or when the prefix's recording is
// over (the session is no longer recording, or a later segment prefix exists) and the file's
// size and modification time have not changed for Config.StableFor. Only finished files are
// uploaded.
//
// Hashes are cached by (path, size, modification time) in the state file, next to the upload
// URL of every upload in progress, so that a restart neither re-hashes nor re-uploads.
package agent
