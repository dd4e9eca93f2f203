package secret

import "io"

// Writer masks keys in a stream written through it, each by a mask of its
// own length (MaskInPlace), and passes the rest on unchanged. A key cut
// between two writes is found: the bytes that may start one are held back
// until the next write or Close, at most MaxHold of them. The zero Writer
// is unusable; Reset readies one without allocating.
type Writer struct {
	r   *Redactor
	w   io.Writer
	buf []byte // held back, then the write being masked
}

// NewWriter returns a Writer masking r's keys on their way to w.
func NewWriter(r *Redactor, w io.Writer) *Writer {
	x := &Writer{}
	x.Reset(r, w)
	return x
}

// Reset makes x mask r's keys on their way to w, keeping its buffer.
func (x *Writer) Reset(r *Redactor, w io.Writer) { x.r, x.w, x.buf = r, w, x.buf[:0] }

// Write masks p and writes what is final of it. It reports len(p) when
// every byte was taken, written or held.
func (x *Writer) Write(p []byte) (int, error) {
	// The pool in force now: a Writer may outlive a reload (Replace).
	r := x.r.live()
	if r.Empty() {
		return x.w.Write(p)
	}
	if len(x.buf) == 0 {
		// The common case: p holds no key. It is scanned where it is
		// and goes out without a copy.
		var small [4]span
		found, n := r.scan(unsafeString(p), false, small[:0])
		if len(found) == 0 {
			if _, err := x.write(p[:n]); err != nil {
				return 0, err
			}
			x.buf = append(x.buf, p[n:]...)
			return len(p), nil
		}
	}
	x.buf = append(x.buf, p...)
	n := r.MaskInPlace(x.buf, false)
	if _, err := x.write(x.buf[:n]); err != nil {
		return 0, err
	}
	x.buf = x.buf[:copy(x.buf, x.buf[n:])]
	return len(p), nil
}

// Cap is the capacity of the buffer x keeps, for a pool to drop large ones.
func (x *Writer) Cap() int { return cap(x.buf) }

// Held is how many bytes wait for the next write.
func (x *Writer) Held() int { return len(x.buf) }

// Close masks and writes what was held back. It does not close the
// underlying writer.
func (x *Writer) Close() error {
	if len(x.buf) == 0 {
		return nil
	}
	x.r.MaskInPlace(x.buf, true)
	_, err := x.write(x.buf)
	x.buf = x.buf[:0]
	return err
}

func (x *Writer) write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return x.w.Write(p)
}
