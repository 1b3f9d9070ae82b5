package agent

import (
	"strconv"
	"sync"
	"time"
)

// job is one finished file to look at, with the server's entry for it from the latest scan.
type job struct {
	f          localFile
	entry      ManifestFile
	known      bool
	manifestAt time.Time // when the manifest the entry comes from was asked for
	failures   int
	notBefore  time.Time
	inFlight   bool
}

func (j *job) key() string { return strconv.FormatInt(j.f.session.SessionID, 10) + "/" + j.f.name }

// queue holds the jobs in order; a job is in it (waiting or in flight) at most once. A job
// that failed goes to the back with a time before which it is not tried, so one bad file never
// holds up the others.
type queue struct {
	mu    sync.Mutex
	items []*job
	jobs  map[string]*job
	wake  chan struct{}
}

func newQueue() *queue { return &queue{jobs: map[string]*job{}, wake: make(chan struct{}, 1)} }

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push adds a job, or refreshes the file and manifest entry of the same waiting job; it
// reports whether the job is new.
func (q *queue) push(j *job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if old, ok := q.jobs[j.key()]; ok {
		if !old.inFlight {
			old.f, old.entry, old.known, old.manifestAt = j.f, j.entry, j.known, j.manifestAt
		}
		return false
	}
	q.jobs[j.key()] = j
	q.items = append(q.items, j)
	q.signal()
	return true
}

// pop takes the first job that may run now; else it says how long until one may, and whether
// the queue is empty (nothing waiting, nothing in flight).
func (q *queue) pop(now time.Time) (j *job, wait time.Duration, empty bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	wait = time.Hour
	for i, it := range q.items {
		if !it.notBefore.After(now) {
			q.items = append(q.items[:i], q.items[i+1:]...)
			it.inFlight = true
			return it, 0, false
		}
		wait = min(wait, it.notBefore.Sub(now))
	}
	return nil, wait, len(q.jobs) == 0
}

// finish forgets a job that is done (or dropped until the next scan finds it again).
func (q *queue) finish(j *job) {
	q.mu.Lock()
	delete(q.jobs, j.key())
	q.mu.Unlock()
	q.signal()
}

// requeue puts a failed job at the back, not to be tried before notBefore.
func (q *queue) requeue(j *job, notBefore time.Time) {
	q.mu.Lock()
	j.inFlight = false
	j.notBefore = notBefore
	q.items = append(q.items, j)
	q.mu.Unlock()
	q.signal()
}
