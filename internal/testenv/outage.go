package testenv

import (
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Outage is a TCP proxy to a real server that refuses every connection while it is down, as
// an outage of that server looks to its clients. It starts down.
type Outage struct {
	ln     net.Listener
	target string
	up     atomic.Bool
}

// NewOutage proxies a free local address to target until t ends.
func NewOutage(t testing.TB, target string) *Outage {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o := &Outage{ln: ln, target: target}
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

func (o *Outage) serve(c net.Conn) {
	defer c.Close()
	if !o.up.Load() {
		return
	}
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
