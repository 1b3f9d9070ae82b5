package recording

import "testing"

func TestPlanStart(t *testing.T) {
	p := Plan{Duration: 86400, FragmentHourly: true, FilePrefix: "cage7", TargetFPS: 30}
	want := Start{SessionID: 12, Duration: 86400, FragmentHourly: true, FilePrefix: "cage7", TargetFPS: 30}
	if got := p.Start(12); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := p.Start(12).Resumed(2, 600); got.FilePrefix != "cage7_s2" || got.Duration != 600 {
		t.Fatalf("resumed: %+v", got)
	}
}
