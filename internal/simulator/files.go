package simulator

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jax-mba/mba/protocol"
)

// maxFrameLines bounds Ptimestamps.txt written one line per frame. A recording with more frames
// than this (30 fps for more than 5.5 simulated minutes) gets one line per simulated second
// instead, so a simulated 30-day session does not write 78 million lines per enclosure.
const maxFrameLines = 10_000

// aviHeader starts every fragment. As with a real AVI writer, the RIFF size field stays zero
// until the file is finalised, so an unfinalised file (reboot, crash) can be told apart.
var aviHeader = []byte("RIFF\x00\x00\x00\x00AVI ")

// aviTrailer is appended when a fragment is finalised (a real writer appends its idx1 index).
var aviTrailer = []byte("idx1\x00\x00\x00\x00")

// videoFiles writes the fake files of one recording (PROTOCOL.md section 6). Times are on the
// simulated clock. It opens and closes files on every write so that thousands of enclosures do
// not hold thousands of descriptors.
type videoFiles struct {
	dir, prefix    string
	zone           *time.Location
	fragmented     bool
	start, end     time.Time // recording start and planned end
	fragEnd        time.Time // end of the current fragment (top of the next local hour)
	cur            string    // path of the current .avi
	written        time.Time // content written up to here
	bytesPerSecond int
	fps            float64
	perFrame       bool  // one timestamp line per frame, else per simulated second
	lines          int64 // timestamp lines written
}

// newVideoFiles creates the directory, Pstart_timestamp.txt, an empty Ptimestamps.txt and the
// first fragment. Existing files of the same prefix and day are overwritten, like the client.
func newVideoFiles(videoDir, hostname, location string, zone *time.Location, p startParams,
	start time.Time, fps float64, bytesPerSecond int) (*videoFiles, error) {
	local := start.In(zone)
	f := &videoFiles{
		dir:            filepath.Join(videoDir, protocol.EnclosureDir(hostname, location), local.Format("2006-01-02")),
		prefix:         p.FilePrefix,
		zone:           zone,
		fragmented:     p.FragmentHourly,
		start:          start,
		end:            start.Add(time.Duration(p.Duration) * time.Second),
		written:        start,
		bytesPerSecond: bytesPerSecond,
		fps:            fps,
		perFrame:       fps*float64(p.Duration) <= maxFrameLines,
	}
	if !strings.HasSuffix(f.prefix, "_") {
		f.prefix += "_"
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	stamp := local.Format("2006-01-02T15:04:05.000000Z07:00") + "\n"
	if err := os.WriteFile(f.path("start_timestamp.txt"), []byte(stamp), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.path("timestamps.txt"), nil, 0o644); err != nil {
		return nil, err
	}
	if err := f.openFragment(start); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *videoFiles) path(suffix string) string { return filepath.Join(f.dir, f.prefix+suffix) }

// openFragment starts the .avi that begins at t.
func (f *videoFiles) openFragment(t time.Time) error {
	if f.fragmented {
		local := t.In(f.zone)
		f.cur = f.path(local.Format("2006-01-02_15-04-05") + ".avi")
		f.fragEnd = time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), 0, 0, 0, f.zone).Add(time.Hour)
	} else {
		f.cur = f.path(".avi")
	}
	return os.WriteFile(f.cur, aviHeader, 0o644)
}

// writeUntil appends content and timestamp lines for the simulated time up to t, rotating
// hourly fragments on the way. A fragment is only opened once there is time to write into it.
func (f *videoFiles) writeUntil(t time.Time) error {
	if t.After(f.end) {
		t = f.end
	}
	for f.written.Before(t) {
		if f.fragmented && !f.written.Before(f.fragEnd) {
			if err := f.finaliseFragment(); err != nil {
				return err
			}
			if err := f.openFragment(f.fragEnd); err != nil {
				return err
			}
		}
		segEnd := t
		if f.fragmented && f.fragEnd.Before(segEnd) {
			segEnd = f.fragEnd
		}
		n := (f.secondsAt(segEnd) - f.secondsAt(f.written)) * int64(f.bytesPerSecond)
		if n > 0 {
			if err := appendFile(f.cur, bytes.Repeat([]byte{'.'}, int(n))); err != nil {
				return err
			}
		}
		f.written = segEnd
	}
	return f.writeTimestamps(t)
}

func (f *videoFiles) secondsAt(t time.Time) int64 { return int64(t.Sub(f.start) / time.Second) }

// writeTimestamps appends the lines of the frames (or seconds) that started before t.
func (f *videoFiles) writeTimestamps(t time.Time) error {
	want := int64(math.Ceil(t.Sub(f.start).Seconds() * f.rate()))
	if want <= f.lines {
		return nil
	}
	var buf []byte
	for i := f.lines; i < want; i++ {
		buf = fmt.Appendf(buf, "%.6f\n", float64(i)/f.rate())
	}
	f.lines = want
	return appendFile(f.path("timestamps.txt"), buf)
}

func (f *videoFiles) rate() float64 {
	if f.perFrame {
		return f.fps
	}
	return 1
}

// finaliseFragment patches the RIFF size and appends the index, as a writer does on close.
func (f *videoFiles) finaliseFragment() error {
	fh, err := os.OpenFile(f.cur, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.Write(aviTrailer); err != nil {
		return err
	}
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	size := make([]byte, 4)
	binary.LittleEndian.PutUint32(size, uint32(st.Size()-8))
	// O_APPEND makes WriteAt fail, so patch through a second handle.
	fw, err := os.OpenFile(f.cur, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer fw.Close()
	_, err = fw.WriteAt(size, 4)
	return err
}

// finish writes up to t and finalises the current fragment.
func (f *videoFiles) finish(t time.Time) error {
	if err := f.writeUntil(t); err != nil {
		return err
	}
	return f.finaliseFragment()
}

func appendFile(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = fh.Write(data)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}
