package heartbeat

import (
	"crypto/sha256"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdmit(t *testing.T) {
	sum := sha256.Sum256([]byte("own-token"))
	own := sum[:]
	lab, other := netip.MustParseAddr("10.0.4.7"), netip.MustParseAddr("10.0.4.8")
	for _, tc := range []struct {
		name string
		e    Enclosure
		s    Sender
		want error
	}{
		{"an unbound enclosure, tokenless: the unmodified client", Enclosure{}, Sender{From: lab}, nil},
		{"its own token, through the relay", Enclosure{TokenHash: own, Relayed: true}, Sender{Token: "own-token", From: other}, nil},
		{"another token", Enclosure{TokenHash: own}, Sender{Token: "guess", From: lab}, ErrToken},
		{"a token for an enclosure that has none", Enclosure{}, Sender{Token: "own-token", From: lab}, ErrToken},
		{"relayed, tokenless", Enclosure{TokenHash: own, Relayed: true}, Sender{From: lab}, ErrRelayed},
		{"bound, from its address", Enclosure{Bound: lab}, Sender{From: lab}, nil},
		{"bound, from its address as IPv4-mapped IPv6", Enclosure{Bound: lab}, Sender{From: netip.AddrFrom16(lab.As16())}, nil},
		{"bound, from another address", Enclosure{Bound: lab}, Sender{From: other}, ErrAddress},
		{"bound, its own token from anywhere", Enclosure{Bound: lab, TokenHash: own}, Sender{Token: "own-token", From: other}, nil},
		{"retired, whatever it carries", Enclosure{Retired: true, TokenHash: own}, Sender{Token: "own-token"}, ErrRetired},
		{"rejected", Enclosure{Rejected: true}, Sender{From: lab}, ErrRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Admit(tc.e, tc.s))
		})
	}
}
