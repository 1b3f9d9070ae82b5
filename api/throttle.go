package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token bucket: Burst attempts at once, then one more every Every. Its text form,
// in configuration, is "burst/every", e.g. "5/1m".
type Rate struct {
	Burst int
	Every time.Duration
}

// UnmarshalText parses "burst/every".
func (r *Rate) UnmarshalText(b []byte) error {
	burst, every, ok := strings.Cut(string(b), "/")
	n, err := strconv.Atoi(burst)
	if !ok || err != nil || n < 1 {
		return fmt.Errorf("rate %q: want burst/every like 5/1m with burst at least 1", b)
	}
	d, err := time.ParseDuration(every)
	if err != nil || d <= 0 {
		return fmt.Errorf("rate %q: every must be a positive duration like 1m", b)
	}
	*r = Rate{Burst: n, Every: d}
	return nil
}

// MarshalText is the inverse of UnmarshalText.
func (r Rate) MarshalText() ([]byte, error) {
	return []byte(fmt.Sprintf("%d/%s", r.Burst, r.Every)), nil
}

// throttle limits attempts per key (an account or a client address). It lives in the
// process: a deployment of several API instances behind a balancer multiplies the limits.
type throttle struct {
	rate Rate
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxBuckets bounds memory; when reached, buckets that are full again (idle keys) are dropped.
const maxBuckets = 100_000

func newThrottle(r Rate, now func() time.Time) *throttle {
	return &throttle{rate: r, now: now, buckets: map[string]*rate.Limiter{}}
}

// wait reports how long key must wait before its next attempt; zero means go ahead, and the
// attempt is counted.
func (t *throttle) wait(key string) time.Duration {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[key]
	if b == nil {
		if len(t.buckets) >= maxBuckets {
			t.evictFull(now)
		}
		b = rate.NewLimiter(rate.Every(t.rate.Every), t.rate.Burst)
		t.buckets[key] = b
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

func (t *throttle) evictFull(now time.Time) {
	for k, b := range t.buckets {
		if b.TokensAt(now) >= float64(t.rate.Burst) {
			delete(t.buckets, k)
		}
	}
}

// throttled checks every (throttle, key) pair and returns a 429 for the longest wait.
func throttled(checks ...throttleCheck) error {
	var longest time.Duration
	for _, c := range checks {
		if d := c.t.wait(c.key); d > longest {
			longest = d
		}
	}
	if longest == 0 {
		return nil
	}
	return &Error{Status: http.StatusTooManyRequests, Message: "too many attempts; try again later", RetryAfter: longest}
}

type throttleCheck struct {
	t   *throttle
	key string
}
