package api

import (
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

func TestThrottleEvictsIdleKeys(t *testing.T) {
	now := time.Now()
	th := newThrottle(Rate{Burst: 1, Every: time.Second}, func() time.Time { return now })
	require.Zero(t, th.wait("a"))
	require.Equal(t, time.Second, th.wait("a"))
	now = now.Add(2 * time.Second)
	th.evictFull(now)
	require.Empty(t, th.buckets, "a full bucket is the same as no bucket")
}
