package simulator

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Stats are totals over all enclosures since New.
type Stats struct {
	Enclosures int // configured
	Recording  int // recording now
	Streaming  int // streaming now
	Silent     int // inside a GoSilent window now
	Crashed    int // stopped for good after a protocol violation (until Reboot)

	HeartbeatsSent int64
	// Replies counts replies by kind: START, STOP, COMPLETE, STREAM, none (204), error (other
	// status), network (no reply), dropped (SetDropReplies), unknown (unknown command_name),
	// violation (a reply the real client crashes on).
	Replies map[string]int64
	Latency Latency // completed heartbeat round trips (request sent to reply body read)

	RecordingsStarted  int64
	RecordingsFinished int64 // duration reached
	RecordingsStopped  int64 // STOP
	RecordingsFailed   int64 // FailRecording or disk full (err_msg reported)
	RecordingsLost     int64 // reboot or client crash mid-recording (file left unfinalised)

	Violations int64 // replies the real client crashes on; each stops its enclosure
	Anomalies  int64 // replies the client survives but section 3 does not allow (see the log)
}

// Latency summarises round trips; percentiles are bucket upper bounds (within 10 %).
type Latency struct {
	Count                   int64
	Mean                    time.Duration
	P50, P90, P95, P99, Max time.Duration
}

func (s Stats) String() string {
	keys := make([]string, 0, len(s.Replies))
	for k := range s.Replies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var replies []string
	for _, k := range keys {
		replies = append(replies, fmt.Sprintf("%s=%d", k, s.Replies[k]))
	}
	return fmt.Sprintf("enclosures=%d recording=%d streaming=%d silent=%d crashed=%d heartbeats=%d replies[%s] "+
		"latency[n=%d mean=%v p50=%v p90=%v p99=%v max=%v] recordings[started=%d finished=%d stopped=%d failed=%d lost=%d] "+
		"violations=%d anomalies=%d",
		s.Enclosures, s.Recording, s.Streaming, s.Silent, s.Crashed, s.HeartbeatsSent, strings.Join(replies, " "),
		s.Latency.Count, s.Latency.Mean, s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.Max,
		s.RecordingsStarted, s.RecordingsFinished, s.RecordingsStopped, s.RecordingsFailed, s.RecordingsLost,
		s.Violations, s.Anomalies)
}

var replyKinds = []string{ReplyStart, ReplyStop, ReplyComplete, ReplyStream, ReplyNone, ReplyError,
	ReplyNetwork, ReplyDropped, ReplyUnknown, ReplyViolation}

// counters are shared by all enclosures; atomics keep the hot path lock-free.
type counters struct {
	heartbeats atomic.Int64
	replies    map[string]*atomic.Int64 // fixed keys, created in newCounters
	started    atomic.Int64
	finished   atomic.Int64
	stopped    atomic.Int64
	failed     atomic.Int64
	lost       atomic.Int64
	violations atomic.Int64
	anomalies  atomic.Int64
	latency    histogram
}

func newCounters() *counters {
	c := &counters{replies: make(map[string]*atomic.Int64)}
	for _, k := range replyKinds {
		c.replies[k] = new(atomic.Int64)
	}
	return c
}

// Histogram buckets grow by 10 % from 10 µs; the last one also holds everything above ~5 min.
const (
	histMin    = 10 * time.Microsecond
	histGrowth = 1.1
	histSize   = 200
)

type histogram struct {
	buckets [histSize]atomic.Int64
	count   atomic.Int64
	sum     atomic.Int64
	max     atomic.Int64
}

func bucketOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(histMin)) / math.Log(histGrowth)))
	return min(i, histSize-1)
}

func bucketUpper(i int) time.Duration {
	return time.Duration(float64(histMin) * math.Pow(histGrowth, float64(i)))
}

func (h *histogram) observe(d time.Duration) {
	h.buckets[bucketOf(d)].Add(1)
	h.count.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) snapshot() Latency {
	var counts [histSize]int64
	var n int64
	for i := range counts {
		counts[i] = h.buckets[i].Load()
		n += counts[i]
	}
	l := Latency{Count: n, Max: time.Duration(h.max.Load())}
	if n == 0 {
		return l
	}
	l.Mean = time.Duration(h.sum.Load() / max(h.count.Load(), 1))
	pct := func(p float64) time.Duration {
		rank := int64(math.Ceil(p * float64(n)))
		var seen int64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				return min(bucketUpper(i), l.Max)
			}
		}
		return l.Max
	}
	l.P50, l.P90, l.P95, l.P99 = pct(0.50), pct(0.90), pct(0.95), pct(0.99)
	return l
}
