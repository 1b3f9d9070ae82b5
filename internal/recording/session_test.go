package recording

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testRules = Rules{MaxEnclosures: 2, MinFPS: 1, MaxFPS: 120, MaxDuration: time.Hour, BytesPerSecond: 1_000_000}

func id(v int64) *int64 { return &v }

func refusal(t *testing.T, err error) *Refusal {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) {
		t.Fatalf("want a *Refusal, got %v", err)
	}
	return r
}

func TestValidateNamesEveryBadField(t *testing.T) {
	ns := NewSession{Name: " ", Duration: 3601, TargetFPS: 0, Devices: []NewSessionDevice{
		{DeviceID: id(1), FilePrefix: "ok"}, {DeviceID: id(1), FilePrefix: "../x"}, {FilePrefix: "p"}}}
	_, err := testRules.Validate(ns)
	r := refusal(t, err)
	want := map[string]string{
		"name":                           "is required, at most 200 characters",
		"duration":                       "must be at most 3600 seconds (1h0m0s)",
		"target_fps":                     "must be between 1 and 120",
		"device_spec":                    "at most 2 enclosures per session",
		"device_spec[1].device_id":       "device 1 is listed twice",
		"device_spec[1].filename_prefix": `must not contain '/' or '\'`,
		"device_spec[2].device_id":       "is required",
	}
	for f, reason := range want {
		if r.Fields[f] != reason {
			t.Errorf("%s: got %q, want %q", f, r.Fields[f], reason)
		}
	}
	if len(r.Fields) != len(want) {
		t.Errorf("fields: %v", r.Fields)
	}
	if r.Message != Refuse(want).Message || !strings.HasPrefix(r.Message, "device_spec: ") {
		t.Errorf("the message lists every reason in field order: %q", r.Message)
	}
}

func TestValidateTrimsTheName(t *testing.T) {
	ns, err := testRules.Validate(NewSession{Name: " night ", Duration: 60, TargetFPS: 30,
		Devices: []NewSessionDevice{{DeviceID: id(1), FilePrefix: "cage"}}})
	if err != nil || ns.Name != "night" {
		t.Fatalf("got %q, %v", ns.Name, err)
	}
}

func TestAdmit(t *testing.T) {
	ns := NewSession{Name: "n", Duration: 100, TargetFPS: 30,
		Devices: []NewSessionDevice{{DeviceID: id(1), FilePrefix: "a"}, {DeviceID: id(2), FilePrefix: "b"}}}
	_, err := testRules.Admit(ns, map[int64]Candidate{1: {ID: 1, Name: "NV1"}})
	if r := refusal(t, err); r.Message != "Invalid device IDs: [2]" || r.Fields["device_spec"] != "unknown device ids: 2" {
		t.Errorf("unknown: %+v", r)
	}

	_, err = testRules.Admit(ns, map[int64]Candidate{1: {ID: 1, Name: "NV1", Unusable: "retired"}, 2: {ID: 2, Name: "NV0", Unusable: "rejected"}})
	if r := refusal(t, err); r.Message != "enclosures that cannot record: NV0 (rejected), NV1 (retired)" {
		t.Errorf("unusable: %+v", r)
	}

	busyIn, low := int64(9), int64(50)
	found := map[int64]Candidate{1: {ID: 1, Name: "NV1", State: EnclosureBusy, SessionID: &busyIn},
		2: {ID: 2, Name: "NV2", State: EnclosureDown, FreeDiskMB: &low}}
	warnings, err := testRules.Admit(ns, found)
	want := []string{"NV1 is busy in session 9: it is listed FAILED", "NV2 is DOWN: it starts recording when it returns",
		"NV2 needs about 100 MB for 100 s of video but reports 50 MB free"}
	if err != nil || len(warnings) != len(want) {
		t.Fatalf("warnings %q, %v", warnings, err)
	}
	for i := range want {
		if warnings[i] != want[i] {
			t.Errorf("warning %d: %q, want %q", i, warnings[i], want[i])
		}
	}

	strict := testRules
	strict.RejectLowDisk = true
	_, err = strict.Admit(ns, found)
	if r := refusal(t, err); r.Fields["device_spec[1].device_id"] != want[2] || len(r.Fields) != 1 {
		t.Errorf("low disk refused: %+v", r)
	}
}
