package testenv

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOutageCut: Cut breaks the connections passed through and refuses new ones until End.
func TestOutageCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() { // an echo server
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	o := NewOutage(t, ln.Addr().String())
	o.End()

	echoes := func(c net.Conn) bool {
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		if _, err := c.Write([]byte("x")); err != nil {
			return false
		}
		b := make([]byte, 1)
		_, err := io.ReadFull(c, b)
		return err == nil && b[0] == 'x'
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", o.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	open := dial()
	require.True(t, echoes(open))

	o.Cut()
	require.False(t, echoes(open), "an open connection survives the cut")
	require.False(t, echoes(dial()), "a new connection gets through during the cut")

	o.End()
	require.True(t, echoes(dial()))
}
