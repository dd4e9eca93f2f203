package secret

import (
	"bytes"
	"strings"
	"testing"
)

// TestRedactorReplace: after Replace the redactor masks the new keys (a
// reloaded pool's) and no longer the dropped ones, in every method.
func TestRedactorReplace(t *testing.T) {
	a := New("sk-or-v1-9f8e7d6c5b4a39281706f5e4d3c2b1a0aaaa")
	b := New("sk-or-v1-0a1b2c3d4e5f60718293a4b5c6d7e8f9bbbb")
	r := NewRedactor([]Key{a})
	text := "a=" + a.v.raw + " b=" + b.v.raw
	if got := r.Redact(text); strings.Contains(got, a.v.raw) || !strings.Contains(got, b.v.raw) {
		t.Fatalf("before Replace: %q", got)
	}
	r.Replace([]Key{b})
	got := r.Redact(text)
	if !strings.Contains(got, a.v.raw) || strings.Contains(got, b.v.raw) || !strings.Contains(got, "…bbbb") {
		t.Errorf("after Replace: %q", got)
	}
	buf := []byte(text)
	r.MaskInPlace(buf, true)
	if strings.Contains(string(buf), b.v.raw) {
		t.Errorf("MaskInPlace after Replace: %q", buf)
	}
	// A Writer on r, the redactor made at start-up that every response's
	// writer holds, masks the new keys too, on its no-copy path and after.
	var out bytes.Buffer
	w := NewWriter(r, &out)
	_, _ = w.Write([]byte(`{"echo":"Bearer ` + b.v.raw + `"}`))
	_, _ = w.Write([]byte(`{"again":"` + b.v.raw + `"}`))
	_ = w.Close()
	if strings.Contains(out.String(), b.v.raw) {
		t.Errorf("Writer after Replace: %q", out.String())
	}
	if r.Empty() || !r.HoldsKeyFold(strings.ToUpper(b.v.raw)) || r.HoldsKeyFold(strings.ToUpper(a.v.raw)) {
		t.Error("Empty/HoldsKeyFold do not follow Replace")
	}
	var none *Redactor
	if !none.Empty() || none.Redact(text) != text {
		t.Error("a nil Redactor masks")
	}
}
