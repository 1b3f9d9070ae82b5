package testenv

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// Outage is a TCP proxy to a real server that refuses every connection while it is down, as
// an outage of that server looks to its clients. It starts down.
type Outage struct {
	ln     net.Listener
	target string
	up     atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // the connections passed through, which Cut breaks
}

// NewOutage proxies a free local address to target until t ends.
func NewOutage(t testing.TB, target string) *Outage {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o := &Outage{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go o.serve(c)
		}
	}()
	return o
}

// Addr is the address clients use instead of target's.
func (o *Outage) Addr() string { return o.ln.Addr().String() }

// End lets connections through from now on.
func (o *Outage) End() { o.up.Store(true) }

// Cut starts an outage again: it refuses new connections and breaks the open ones, as a
// server that goes down does to its clients' connections.
func (o *Outage) Cut() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.up.Store(false)
	for c := range o.conns {
		c.Close()
	}
}

func (o *Outage) serve(c net.Conn) {
	defer c.Close()
	o.mu.Lock()
	if !o.up.Load() {
		o.mu.Unlock()
		return
	}
	o.conns[c] = struct{}{}
	o.mu.Unlock()
	defer func() { o.mu.Lock(); delete(o.conns, c); o.mu.Unlock() }()
	s, err := net.Dial("tcp", o.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
}

// Tmpfs mounts a tmpfs of size (e.g. "2m") for t, to fill a disk for real; it skips t, saying
// why, where that is impossible (not root, no mount).
func Tmpfs(t testing.TB, size string) string {
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// Fill writes a file under dir until all but leave bytes of its file system are used (with
// leave 0, until a write fails for want of space), and returns the file's path.
func Fill(t testing.TB, dir string, leave int64) string {
	path := filepath.Join(dir, "filler")
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(make([]byte, max(int64(st.Bavail)*int64(st.Bsize)-leave, 0)))
	for leave == 0 && err == nil {
		_, err = f.Write(make([]byte, 4096))
	}
	if leave == 0 {
		require.ErrorIs(t, err, syscall.ENOSPC)
	} else {
		require.NoError(t, err)
	}
	return path
}
