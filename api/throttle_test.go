package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRateText(t *testing.T) {
	var r Rate
	require.NoError(t, r.UnmarshalText([]byte("5/1m")))
	require.Equal(t, Rate{Burst: 5, Every: time.Minute}, r)
	for _, bad := range []string{"", "5", "0/1m", "-1/1m", "5/0s", "5/-1m", "x/1m", "5/soon"} {
		require.Error(t, r.UnmarshalText([]byte(bad)), bad)
	}
}

func FuzzRateText(f *testing.F) {
	for _, s := range []string{"5/1m", "20/6s", "0/1m", "5/", "/", "9999999999999999999/1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var r Rate
		if r.UnmarshalText([]byte(s)) != nil {
			return
		}
		require.GreaterOrEqual(t, r.Burst, 1)
		require.Positive(t, r.Every)
		text, err := r.MarshalText()
		require.NoError(t, err)
		var again Rate
		require.NoError(t, again.UnmarshalText(text))
		require.Equal(t, r, again, "text form round-trips")
	})
}

func TestThrottleForgetsIdleKeysOnly(t *testing.T) {
	now := time.Now()
	th := newThrottle(Rate{Burst: 2, Every: time.Minute}, func() time.Time { return now })
	require.Zero(t, th.wait("a"))
	require.Zero(t, th.wait("a"))
	require.Equal(t, time.Minute, th.wait("a"), "burst spent")

	// Many other keys, and generations turning over, never free a key that is still waiting.
	for i := range 5000 {
		now = now.Add(10 * time.Millisecond)
		th.wait(fmt.Sprint("k", i))
	}
	require.Positive(t, th.wait("a"), "a is still throttled after other keys came and went")

	// Idle for two generations (a bucket's refill time each), keys are forgotten.
	now = now.Add(5 * time.Minute)
	for i := range 5000 {
		th.wait(fmt.Sprint("n", i))
	}
	now = now.Add(5 * time.Minute)
	for i := range 5000 {
		th.wait(fmt.Sprint("m", i))
	}
	require.LessOrEqual(t, th.keys(), 10_000, "the first 5000 keys and a were dropped")
	require.Zero(t, th.wait("a"), "a forgotten is a full bucket")
}

func TestThrottleMemoryIsBounded(t *testing.T) {
	now := time.Now()
	th := newThrottle(Rate{Burst: 5, Every: time.Minute}, func() time.Time { return now })
	for i := range 3 * maxBuckets {
		th.wait(fmt.Sprint("flood", i))
	}
	require.LessOrEqual(t, th.keys(), 2*maxBuckets+throttleShards)
}

func TestAccountClientKey(t *testing.T) {
	require.Equal(t, accountClient(" Ann@Lab.example", "10.0.0.1"), accountClient("ann@lab.example", "10.0.0.1"))
	require.NotEqual(t, accountClient("ann@lab.example", "10.0.0.1"), accountClient("ann@lab.example", "10.0.0.2"))
}

// BenchmarkThrottleWaitFull is one attempt of a new key while the throttle holds 100 000
// keys: constant, where a full-map scan took 36.8 ms.
func BenchmarkThrottleWaitFull(b *testing.B) {
	now := time.Now()
	th := newThrottle(Rate{Burst: 5, Every: time.Minute}, func() time.Time { return now })
	for i := range maxBuckets {
		th.wait(fmt.Sprint("k", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		th.wait(fmt.Sprint("new", i))
	}
}
