package bench

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process is a group of OS processes measured together (Postgres is a postmaster and its
// children).
type Process struct {
	Name string
	PIDs func() []int
}

// Usage is a process group's CPU and memory over a window.
type Usage struct {
	CPUPercent float64 `json:"cpu_percent"` // of one core, averaged over the window
	MaxRSSMB   float64 `json:"max_rss_mb"`
}

const clockTicks = 100 // USER_HZ on Linux

// cpuTicks and rss of one pid from /proc.
func procSample(pid int) (ticks int64, rssKB int64) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) > 13 {
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks = u + st
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				rssKB, _ = strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			}
		}
	}
	return ticks, rssKB
}

// ChildrenOf lists pid and its direct children.
func ChildrenOf(pid int) []int {
	out := []int{pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// Sampler measures process groups once a second until stopped.
type Sampler struct {
	procs  []Process
	mu     sync.Mutex
	start  map[string]int64
	last   map[string]int64
	maxRSS map[string]int64
	t0, t1 time.Time
	stop   context.CancelFunc
	done   chan struct{}
}

// Sample starts measuring procs.
func Sample(procs []Process) *Sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sampler{procs: procs, start: map[string]int64{}, last: map[string]int64{}, maxRSS: map[string]int64{},
		stop: cancel, done: make(chan struct{}), t0: time.Now()}
	s.tick(true)
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				s.tick(false)
				return
			case <-t.C:
				s.tick(false)
			}
		}
	}()
	return s
}

func (s *Sampler) tick(first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		var ticks, rss int64
		for _, pid := range p.PIDs() {
			t, r := procSample(pid)
			ticks += t
			rss += r
		}
		if first {
			s.start[p.Name] = ticks
		}
		s.last[p.Name] = ticks
		s.maxRSS[p.Name] = max(s.maxRSS[p.Name], rss)
	}
	s.t1 = time.Now()
}

// Stop ends the sampling and returns each group's usage.
func (s *Sampler) Stop() map[string]Usage {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	secs := s.t1.Sub(s.t0).Seconds()
	out := map[string]Usage{}
	for _, p := range s.procs {
		out[p.Name] = Usage{
			CPUPercent: round1(float64(s.last[p.Name]-s.start[p.Name]) / clockTicks / secs * 100),
			MaxRSSMB:   round1(float64(s.maxRSS[p.Name]) / 1024),
		}
	}
	return out
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
