// Package e2e holds the end-to-end tests: the real API, outbox dispatcher and Temporal worker
// against the real PostgreSQL and Temporal dev server, driven by simulated enclosures that
// behave like the unmodified client.
package e2e
