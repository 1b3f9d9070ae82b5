package api

import (
	"encoding/json"
	"time"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// ScheduleView is a schedule: its spec and session body as given, with what Temporal says of
// its runs; Fires and Sessions only in a schedule's detail.
type ScheduleView struct {
	ID    int64   `json:"id"`
	Name  string  `json:"name"`
	Owner *string `json:"owner"`
	// Spec is the request's kind, times (TimeZone's wall clock), end, count and policies.
	Spec          json.RawMessage       `json:"spec"`
	Session       json.RawMessage       `json:"session"`
	TimeZone      string                `json:"time_zone"`
	Paused        bool                  `json:"paused"`
	Note          string                `json:"note"`
	NextRuns      []time.Time           `json:"next_runs"`
	RecentRuns    []ScheduleRunView     `json:"recent_runs"`
	RemainingRuns *int                  `json:"remaining_runs"` // null: no limit
	Runs          int                   `json:"runs"`           // taken so far
	TemporalError string                `json:"temporal_error,omitempty"`
	CreatedAt     time.Time             `json:"created_at"`
	UpdatedAt     time.Time             `json:"updated_at"`
	Fires         []ScheduleFireView    `json:"fires,omitempty"`
	Sessions      []ScheduleSessionView `json:"sessions,omitempty"`
}

// ScheduleRunView is one action Temporal took for a schedule.
type ScheduleRunView struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	ActualAt    time.Time `json:"actual_at"`
	WorkflowID  string    `json:"workflow_id"`
}

// ScheduleFireView is what one fire did: created (with every enclosure), created_partial,
// skipped or failed, and why.
type ScheduleFireView struct {
	WorkflowID string    `json:"workflow_id"`
	FiredAt    time.Time `json:"fired_at"`
	Outcome    string    `json:"outcome"`
	Message    string    `json:"message"`
	SessionID  *int64    `json:"session_id"`
}

func scheduleFireView(f store.ScheduleFire) ScheduleFireView {
	return ScheduleFireView{WorkflowID: f.WorkflowID, FiredAt: f.FiredAt, Outcome: f.Outcome, Message: f.Message, SessionID: f.SessionID}
}

// ScheduleSessionView is a session a schedule created.
type ScheduleSessionView struct {
	ID           int64                   `json:"id"`
	Name         string                  `json:"name"`
	Status       recording.SessionStatus `json:"status"`
	CreationTime time.Time               `json:"creation_time"`
}

func scheduleSessionView(x store.ScheduleSession) ScheduleSessionView {
	return ScheduleSessionView{ID: x.ID, Name: x.Name, Status: x.Status, CreationTime: x.CreatedAt}
}
