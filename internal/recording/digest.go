package recording

import "time"

// DigestFacts is what happened in a digest's period [Since, Until): the alerts with something
// in it (or still open), the sessions that finished in it and the notification channels whose
// last delivery failed. The store gathers them and the digest activity writes them up, so
// both speak these types.
type DigestFacts struct {
	Since, Until   time.Time
	Alerts         []DigestAlert
	Sessions       []DigestSession
	BrokenChannels []DigestChannel
}

// DigestAlert is one alert in a digest, with its transitions in the period.
type DigestAlert struct {
	ID          int64
	Kind        AlertKind
	SessionID   int64 // 0: a fleet alert
	SessionName string
	CreatorID   int64 // the session's creator; 0: none
	Device      string
	Summary     string
	State       AlertState // now
	OpenedAt    time.Time
	ResolvedAt  *time.Time
	Events      []AlertEvent // in the period, in order
}

// DigestSession is a session that finished in the period, with its outcome.
type DigestSession struct {
	ID        int64
	Name      string
	Status    string
	CreatorID int64
	EndedAt   time.Time
}

// DigestChannel is a notification channel target whose last delivery failed.
type DigestChannel struct {
	Channel   string
	Target    string
	Failures  int64
	LastError string
	LastAt    time.Time
}

// DigestReader is a user who may get the digest, with their choice (nil: the default).
type DigestReader struct {
	UserID int64
	Email  string
	Admin  bool
	Digest *bool
}
