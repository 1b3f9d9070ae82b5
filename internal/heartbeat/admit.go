package heartbeat

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/netip"
)

// Refusals of a heartbeat: who sent it may not speak for the enclosure (PROTOCOL.md section 8).
var (
	ErrToken = errors.New("wrong enclosure token")
	// ErrRelayed: a tokenless heartbeat for an enclosure whose heartbeats must come through its
	// relay with its token.
	ErrRelayed = errors.New("the enclosure is relayed: its heartbeats must carry its token")
	// ErrAddress: a tokenless heartbeat for an enclosure bound to another address.
	ErrAddress  = errors.New("heartbeat from an address the enclosure is not bound to")
	ErrRetired  = errors.New("the enclosure is retired")
	ErrRejected = errors.New("the enclosure was rejected by an administrator")
)

// Enclosure is what the enclosure's row says of who may speak for it.
type Enclosure struct {
	TokenHash []byte // SHA-256 of its own token; nil: it has none
	Relayed   bool   // its heartbeats must come through its relay, with its token
	Bound     netip.Addr
	Retired   bool
	Rejected  bool // by an administrator
}

// Sender is who sent a heartbeat: the bearer token it presented ("" none) and its address.
type Sender struct {
	Token string
	From  netip.Addr
}

// Admit says whether s may speak for e: nil, or the refusal. A heartbeat with a token must
// carry the enclosure's own (it came through the relay); one without is accepted unless the
// enclosure is relayed or bound to another address. Tokenless heartbeats from outside the
// allowed networks never get here (the API refuses them first). An upload token alone never
// locks out the unmodified client, which sends none.
func Admit(e Enclosure, s Sender) error {
	switch {
	case e.Retired:
		return ErrRetired
	case e.Rejected:
		return ErrRejected
	case s.Token != "":
		if !TokenMatches(s.Token, e.TokenHash) {
			return ErrToken
		}
	case e.Relayed:
		return ErrRelayed
	case e.Bound.IsValid() && e.Bound != s.From.Unmap():
		return ErrAddress
	}
	return nil
}

// TokenMatches reports whether token is the enclosure's own, whose SHA-256 is hash (compared
// in constant time); with no hash (no token of its own) none matches. The one check of an
// enclosure's token, for its heartbeats and its uploads alike.
func TokenMatches(token string, hash []byte) bool {
	sum := sha256.Sum256([]byte(token))
	return hash != nil && subtle.ConstantTimeCompare(sum[:], hash) == 1
}
