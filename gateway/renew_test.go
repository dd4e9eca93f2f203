package gateway

import (
	"net/http/httptest"
	"testing"
	"time"
)

// deadlineRecorder is a ResponseWriter whose connection deadline is seen.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadline time.Time
	sets     int
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadline, d.sets = t, d.sets+1
	return nil
}

// TestClientWriterDeadlineStaysAhead: whatever renew skips, every write
// meets a deadline at least WRITE_TIMEOUT ahead and at most the slack
// more, and each answer on a connection sets its own at its start.
func TestClientWriterDeadlineStaysAhead(t *testing.T) {
	for _, timeout := range []time.Duration{time.Millisecond, 80 * time.Millisecond, time.Minute} {
		t.Run(timeout.String(), func(t *testing.T) {
			rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
			slack := renewSlack(timeout)
			check := func(what string, before, after time.Time) {
				t.Helper()
				if rec.deadline.Before(before.Add(timeout)) || rec.deadline.After(after.Add(timeout+slack)) {
					t.Fatalf("%s: deadline %v, want within [%v, %v]", what, rec.deadline,
						before.Add(timeout), after.Add(timeout+slack))
				}
			}
			for answer := range 3 {
				sets := rec.sets
				before := time.Now()
				cw := newClientWriter(rec, nil, timeout)
				check("start", before, time.Now())
				if rec.sets != sets+1 {
					t.Fatalf("answer %d set no deadline of its own at its start", answer)
				}
				for i := range 20 {
					before := time.Now()
					if _, err := cw.Write([]byte("chunk ")); err != nil {
						t.Fatal(err)
					}
					check("write", before, time.Now())
					if i%5 == 0 {
						before := time.Now()
						if err := cw.FlushError(); err != nil {
							t.Fatal(err)
						}
						check("flush", before, time.Now())
					}
					if timeout < time.Second {
						time.Sleep(timeout / 4) // past the slack now and then
					}
				}
				cw.finish()
				cw.release()
			}
		})
	}
}
