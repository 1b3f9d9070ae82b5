package bench

import (
	"bytes"
	"fmt"
	"html"
	"time"
)

// timelineSVG plots the heartbeat outcomes (stacked: 2xx, 503, no reply, other error) by the
// time the outcome came, in bins of binS seconds (the heartbeat interval, so the bars do not
// alternate), with the fault windows shaded and the commands delivered marked above.
func timelineSVG(events []beatEvent, t0 time.Time, phases []FaultPhase) []byte {
	const (
		pxPerS  = 3.0
		binS    = 2
		left    = 40.0
		top     = 40.0
		height  = 160.0
		classes = 4
	)
	secs := 1
	for _, e := range events {
		secs = max(secs, int(e.at.Sub(t0).Seconds())+1)
	}
	bins := make([][classes]int, secs/binS+1)
	var starts, stops []float64
	for _, e := range events {
		s := e.at.Sub(t0).Seconds()
		if s < 0 {
			continue
		}
		c := 3
		switch {
		case e.status >= 200 && e.status < 300:
			c = 0
		case e.status == 503:
			c = 1
		case e.status == 0:
			c = 2
		}
		bins[int(s)/binS][c]++
		switch e.command {
		case "START":
			starts = append(starts, s)
		case "STOP":
			stops = append(stops, s)
		}
	}
	peak := 1
	for _, b := range bins {
		peak = max(peak, b[0]+b[1]+b[2]+b[3])
	}
	width := max(1100, left+float64(secs)*pxPerS+20) // room for the legend
	var w bytes.Buffer
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, top+height+50)
	fmt.Fprintf(&w, `<text x="%.0f" y="14">heartbeat outcomes per %d s, when the reply came: 2xx (green), 503 (orange), no reply (grey), other error (red); START (blue) and STOP (purple) delivered above; faults shaded</text>`+"\n", left, binS)
	for _, p := range phases {
		if p.Skipped != "" {
			continue
		}
		x := left + p.InjectAtS*pxPerS
		fmt.Fprintf(&w, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#f6d6d6"/>`+"\n", x, top, (p.HealAtS-p.InjectAtS)*pxPerS, height)
		fmt.Fprintf(&w, `<text x="%.1f" y="%.0f">%s</text>`+"\n", x, top+height+28, html.EscapeString(p.Fault))
	}
	colors := [classes]string{"#3a9a3a", "#e69500", "#999999", "#d62728"}
	for i, b := range bins {
		y := top + height
		for c := range classes {
			if b[c] == 0 {
				continue
			}
			h := float64(b[c]) / float64(peak) * height
			y -= h
			fmt.Fprintf(&w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", left+float64(i*binS)*pxPerS, y, binS*pxPerS, h, colors[c])
		}
	}
	for _, m := range []struct {
		at    []float64
		color string
		y     float64
	}{{starts, "#1f77b4", top - 14}, {stops, "#8c3fbf", top - 7}} {
		for _, s := range m.at {
			fmt.Fprintf(&w, `<rect x="%.1f" y="%.0f" width="1" height="6" fill="%s"/>`+"\n", left+s*pxPerS, m.y, m.color)
		}
	}
	fmt.Fprintf(&w, `<line x1="%.0f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="black"/>`+"\n", left, top+height, left+float64(secs)*pxPerS, top+height)
	for s := 0; s < secs; s += 60 {
		x := left + float64(s)*pxPerS
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="black"/><text x="%.1f" y="%.0f">%d s</text>`+"\n",
			x, top+height, x, top+height+4, x-8, top+height+15, s)
	}
	fmt.Fprintf(&w, `<text x="4" y="%.0f">%d</text>`+"\n", top+8, peak)
	w.WriteString("</svg>\n")
	return w.Bytes()
}
