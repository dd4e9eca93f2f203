package gateway

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/keygate/keygate/secret"
)

const redactTestKey = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef01234567c0de"

// closeCounter is an upstream body that counts its closes.
type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func errorResponse(status int, body io.Reader, hdr ...string) (*http.Response, *closeCounter) {
	cc := &closeCounter{Reader: body}
	resp := &http.Response{StatusCode: status, Header: http.Header{}, Body: cc, ContentLength: -1}
	for i := 0; i+1 < len(hdr); i += 2 {
		resp.Header.Set(hdr[i], hdr[i+1])
	}
	return resp, cc
}

func gz(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = io.WriteString(zw, s)
	_ = zw.Close()
	return b.Bytes()
}

func TestRedactErrorBody(t *testing.T) {
	r := secret.NewRedactor([]secret.Key{secret.New(redactTestKey)})
	masked := secret.Mask(redactTestKey)
	quoting := `{"error":{"message":"Incorrect API key provided: ` + redactTestKey + `"}}`
	plain := `{"error":{"message":"rate limited"}}`
	tests := []struct {
		name    string
		status  int
		body    []byte
		hdr     []string
		want    string
		wantLen string // Content-Length header after, "" for none
		wantEnc string
	}{
		{"success untouched", 200, []byte(quoting), nil, quoting, "", ""},
		{"quoted key masked", 401, []byte(quoting), []string{"Content-Length", strconv.Itoa(len(quoting))},
			strings.ReplaceAll(quoting, redactTestKey, masked), strconv.Itoa(len(strings.ReplaceAll(quoting, redactTestKey, masked))), ""},
		{"quoted key masked, chunked", 403, []byte(quoting), nil,
			strings.ReplaceAll(quoting, redactTestKey, masked), strconv.Itoa(len(strings.ReplaceAll(quoting, redactTestKey, masked))), ""},
		{"no key: as it came", 429, []byte(plain), []string{"Content-Length", strconv.Itoa(len(plain))}, plain, strconv.Itoa(len(plain)), ""},
		{"no key, chunked: no length added", 500, []byte(plain), nil, plain, "", ""},
		{"gzip with key: decoded and masked", 401, gz(quoting), []string{"Content-Encoding", "gzip"},
			strings.ReplaceAll(quoting, redactTestKey, masked), strconv.Itoa(len(strings.ReplaceAll(quoting, redactTestKey, masked))), ""},
		{"gzip without key: as it came", 402, gz(plain), []string{"Content-Encoding", "gzip"}, string(gz(plain)), "", "gzip"},
		{"broken gzip: as it came", 402, []byte("not gzip " + redactTestKey[:8]), []string{"Content-Encoding", "gzip"}, "not gzip " + redactTestKey[:8], "", "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, cc := errorResponse(tt.status, bytes.NewReader(tt.body), tt.hdr...)
			redactErrorBody(resp, r)
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != tt.want {
				t.Fatalf("body %q, %v; want %q", got, err, tt.want)
			}
			if h := resp.Header.Get("Content-Length"); h != tt.wantLen {
				t.Errorf("Content-Length %q, want %q", h, tt.wantLen)
			}
			if resp.ContentLength >= 0 && resp.ContentLength != int64(len(got)) {
				t.Errorf("ContentLength %d for %d bytes", resp.ContentLength, len(got))
			}
			if h := resp.Header.Get("Content-Encoding"); h != tt.wantEnc {
				t.Errorf("Content-Encoding %q, want %q", h, tt.wantEnc)
			}
			_ = resp.Body.Close()
			if cc.closed != 1 {
				t.Errorf("upstream body closed %d times", cc.closed)
			}
		})
	}
	resp, _ := errorResponse(401, bytes.NewReader([]byte(quoting)))
	redactErrorBody(resp, nil)
	if b, _ := io.ReadAll(resp.Body); string(b) != quoting {
		t.Fatal("a nil Redactor changed the body")
	}
}

// TestRedactLongErrorBody: a body too long to read whole is masked as it
// streams, keys cut between reads included.
func TestRedactLongErrorBody(t *testing.T) {
	r := secret.NewRedactor([]secret.Key{secret.New(redactTestKey)})
	masked := secret.Mask(redactTestKey)
	var in strings.Builder
	for in.Len() < 3*maxRedactWhole {
		in.WriteString(strings.Repeat("z", 1+in.Len()%9973))
		in.WriteString(redactTestKey)
	}
	want := strings.ReplaceAll(in.String(), redactTestKey, masked)
	for name, rd := range map[string]func(io.Reader) io.Reader{
		"whole reads": func(r io.Reader) io.Reader { return r },
		"half reads":  iotest.HalfReader,
		"one byte": func(r io.Reader) io.Reader {
			return io.MultiReader(io.LimitReader(r, maxRedactWhole+7), iotest.OneByteReader(io.LimitReader(r, 20000)), r)
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp, _ := errorResponse(429, rd(strings.NewReader(in.String())), "Content-Length", strconv.Itoa(in.Len()))
			redactErrorBody(resp, r)
			got, err := io.ReadAll(iotest.HalfReader(resp.Body))
			if err != nil || string(got) != want {
				t.Fatalf("masked stream differs (%d bytes, want %d): %v", len(got), len(want), err)
			}
			if resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 {
				t.Fatalf("a streamed body keeps a length: %q %d", resp.Header.Get("Content-Length"), resp.ContentLength)
			}
		})
	}
}

// TestRedactBrokenErrorBody: an upstream that breaks off mid-body gives
// what came, masked, then the error.
func TestRedactBrokenErrorBody(t *testing.T) {
	r := secret.NewRedactor([]secret.Key{secret.New(redactTestKey)})
	boom := errors.New("connection reset")
	resp, _ := errorResponse(401, io.MultiReader(strings.NewReader("bad key "+redactTestKey), iotest.ErrReader(boom)))
	redactErrorBody(resp, r)
	got, err := io.ReadAll(resp.Body)
	if !errors.Is(err, boom) || string(got) != "bad key "+secret.Mask(redactTestKey) {
		t.Fatalf("got %q, %v", got, err)
	}
}
