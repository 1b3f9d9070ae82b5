package api

import (
	"fmt"
	"hash/maphash"
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

// throttle limits attempts per key (an account and client pair, or a client address). It
// lives in the process: a deployment of several API instances behind a balancer multiplies the
// limits.
//
// The work per attempt is O(1) whatever the number of keys: keys are spread over shards, each
// with its own lock, and idle keys expire by generations instead of a scan. A shard keeps the
// keys seen in its current generation and in the one before; when a generation is older than
// the time a bucket takes to fill up again, the older one is dropped whole. Every key in it had
// been idle that long, so its bucket was full: forgetting it changes nothing.
type throttle struct {
	rate   Rate
	now    func() time.Time
	window time.Duration // a bucket's time from empty to full
	seed   maphash.Seed
	shards [throttleShards]throttleShard
}

type throttleShard struct {
	mu        sync.Mutex
	since     time.Time // start of the current generation
	cur, prev map[string]*rate.Limiter
}

const (
	throttleShards = 64
	// maxBuckets bounds memory under a flood of distinct keys: a shard whose generation fills
	// up turns over early (losing only the state of keys idle for a generation).
	maxBuckets = 100_000
)

func newThrottle(r Rate, now func() time.Time) *throttle {
	t := &throttle{rate: r, now: now, window: time.Duration(r.Burst) * r.Every, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].cur, t.shards[i].prev = map[string]*rate.Limiter{}, map[string]*rate.Limiter{}
	}
	return t
}

// wait reports how long key must wait before its next attempt; zero means go ahead, and the
// attempt is counted.
func (t *throttle) wait(key string) time.Duration {
	now := t.now()
	sh := &t.shards[maphash.String(t.seed, key)%throttleShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.since) >= t.window || len(sh.cur) >= maxBuckets/throttleShards {
		sh.prev, sh.cur, sh.since = sh.cur, make(map[string]*rate.Limiter, len(sh.cur)), now
	}
	b := sh.cur[key]
	if b == nil {
		if b = sh.prev[key]; b != nil {
			delete(sh.prev, key)
		} else {
			b = rate.NewLimiter(rate.Every(t.rate.Every), t.rate.Burst)
		}
		sh.cur[key] = b
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// keys is the number of keys the throttle remembers.
func (t *throttle) keys() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.prev)
		sh.mu.Unlock()
	}
	return n
}

// accountClient is the throttle key of one account tried from one client: a stranger's
// failures lock out only the stranger, never the account's owner on their own client.
func accountClient(account, client string) string {
	return strings.ToLower(strings.TrimSpace(account)) + "\x00" + client
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
