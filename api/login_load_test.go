package api

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
)

// parallelLogins sends n logins at once, each from a client address of its own (so only the
// hash bound, not the throttle, decides), half with the wrong password; it returns how many
// got each status.
func (h *harness) parallelLogins(n int, email, password string) map[int]int {
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pw := password
			if i%2 == 1 {
				pw = "a wrong password"
			}
			statuses[i] = h.loginFrom(fmt.Sprintf("10.9.%d.%d", i/256, i%256), email, pw).status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	return count
}

func (h *harness) auditCount(action string) int {
	var n int
	require.NoError(h.t, h.srv.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action = @action`,
		pgx.NamedArgs{"action": action}).Scan(&n))
	return n
}

// TestParallelLoginsAllAnswered: 200 logins at once through two hash slots are all answered
// (none dropped), and every failed one is in the audit log.
func TestParallelLoginsAllAnswered(t *testing.T) {
	h := newHarness(t, func(d *Deps) {
		d.Config.TrustProxy = true
		d.Config.HashMemoryKiB = 2 * uint64(testHasher.MemoryKiB)
		d.Config.HashWait = 2 * time.Minute // generous: this test is about answers, not speed
	})
	require.Equal(t, 2, cap(h.srv.hashSlots))
	h.user("ann@lab.example", "correct horse", false)
	got := h.parallelLogins(200, "ann@lab.example", "correct horse")
	require.Equal(t, map[int]int{200: 100, 401: 100}, got)
	require.Equal(t, 100, h.auditCount("login.failed"), "no failed-login audit row lost")
	require.Equal(t, 100, h.auditCount("login"))
}

// BenchmarkParallelLogins200 measures the memory of 200 logins at once with the production
// hasher (argon2id, 46 MiB a hash) and hash budgets of the default 128 MiB and 256 MiB (two
// and five hashes at a time). Run it with:
// MBA_TEST_RACE=0 scripts/test.sh -run '^$' -bench ParallelLogins200 -benchtime 1x ./api/
func BenchmarkParallelLogins200(b *testing.B) {
	for _, budgetMiB := range []uint64{128, 256} {
		b.Run(fmt.Sprintf("budget=%dMiB", budgetMiB), func(b *testing.B) { benchmarkParallelLogins(b, budgetMiB<<10) })
	}
}

func benchmarkParallelLogins(b *testing.B, budgetKiB uint64) {
	h := newHarness(b, func(d *Deps) {
		d.Config.HashMemoryKiB = budgetKiB
		d.Hasher = auth.DefaultHasher
		d.Config.TrustProxy = true
		d.Config.HashWait = 10 * time.Minute // every login served: the figure is the memory bound
		d.Config.RequestTimeout = 10 * time.Minute
	})
	hash, err := auth.DefaultHasher.Hash("correct horse")
	require.NoError(b, err)
	_, err = h.store.CreateUser(context.Background(), "ann@lab.example", hash, false)
	require.NoError(b, err)
	var peakHeap, peakRSS float64
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset the peak RSS (VmHWM)
		done := make(chan struct{})
		heap := make(chan uint64)
		go func() { // sample the heap while the logins run
			var peak uint64
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				select {
				case <-done:
					heap <- peak
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		got := h.parallelLogins(200, "ann@lab.example", "correct horse")
		close(done)
		peakHeap = max(peakHeap, float64(<-heap)/(1<<20))
		peakRSS = max(peakRSS, vmHWM()/1024)
		require.Equal(b, map[int]int{200: 100, 401: 100}, got, "every login answered")
	}
	b.ReportMetric(peakHeap, "peak-heap-MiB")
	b.ReportMetric(peakRSS, "peak-rss-MiB")
	b.ReportMetric(float64(cap(h.srv.hashSlots)), "hash-slots")
}

// vmHWM is the process's peak resident memory in KiB since the last reset.
func vmHWM() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb
		}
	}
	return 0
}
