package gateway

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
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

func zl(s string) []byte {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	_, _ = io.WriteString(zw, s)
	_ = zw.Close()
	return b.Bytes()
}

func rawDeflate(s string) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.DefaultCompression)
	_, _ = io.WriteString(fw, s)
	_ = fw.Close()
	return b.Bytes()
}

// withheld is the body keygate sends instead of one it cannot check.
func withheld(status int, why string) string {
	return `{"error":{"message":"upstream answered ` + strconv.Itoa(status) +
		`; its body was withheld because it could not be checked for API keys: ` + why + `","type":"upstream_error","code":` + strconv.Itoa(status) + `}}`
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
		{"gzip without key: decoded", 402, gz(plain), []string{"Content-Encoding", "gzip"}, plain, "", ""},
		{"broken gzip: withheld", 402, []byte("not gzip " + redactTestKey), []string{"Content-Encoding", "gzip"}, withheld(402, "it does not decode as its Content-Encoding says"), strconv.Itoa(len(withheld(402, "it does not decode as its Content-Encoding says"))), ""},
		{"deflate with key: decoded and masked", 401, zl(quoting), []string{"Content-Encoding", "deflate"},
			strings.ReplaceAll(quoting, redactTestKey, masked), strconv.Itoa(len(strings.ReplaceAll(quoting, redactTestKey, masked))), ""},
		{"deflate without key: decoded", 429, zl(plain), []string{"Content-Encoding", "Deflate"}, plain, "", ""},
		// Raw DEFLATE, as many servers send "deflate": decoded too.
		{"raw deflate with key: decoded and masked", 401, rawDeflate(quoting), []string{"Content-Encoding", "deflate"},
			strings.ReplaceAll(quoting, redactTestKey, masked), strconv.Itoa(len(strings.ReplaceAll(quoting, redactTestKey, masked))), ""},
		{"identity twice: as it came", 429, []byte(plain), []string{"Content-Encoding", "identity"}, plain, "", ""},
		{"br: withheld", 401, []byte(quoting), []string{"Content-Encoding", "br"}, withheld(401, "its Content-Encoding (br) is not one keygate can read"),
			strconv.Itoa(len(withheld(401, "its Content-Encoding (br) is not one keygate can read"))), ""},
		{"two codings: withheld", 403, []byte(quoting), []string{"Content-Encoding", "gzip, zstd"}, withheld(403, "its Content-Encoding (gzip, zstd) is not one keygate can read"),
			strconv.Itoa(len(withheld(403, "its Content-Encoding (gzip, zstd) is not one keygate can read"))), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, cc := errorResponse(tt.status, bytes.NewReader(tt.body), tt.hdr...)
			normalizeEncoding(resp)
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
	for in.Len() < 4*maxRedactWhole {
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

// TestRedactErrorHeaders: a key quoted in an error answer's header is
// masked; a success's headers are not read.
func TestRedactErrorHeaders(t *testing.T) {
	r := secret.NewRedactor([]secret.Key{secret.New(redactTestKey)})
	for _, tt := range []struct {
		status int
		want   string
	}{
		{400, "key " + secret.Mask(redactTestKey)},
		{502, "key " + secret.Mask(redactTestKey)},
		{200, "key " + redactTestKey},
	} {
		resp, _ := errorResponse(tt.status, strings.NewReader("x"), "X-Echo-Key", "key "+redactTestKey)
		redactErrorBody(resp, r)
		if got := resp.Header.Get("X-Echo-Key"); got != tt.want {
			t.Errorf("%d: X-Echo-Key %q, want %q", tt.status, got, tt.want)
		}
	}
}

// TestRedactLongEncodedErrorBody: an encoded body too long to read whole is
// decoded as it streams, masked and sent plain.
func TestRedactLongEncodedErrorBody(t *testing.T) {
	r := secret.NewRedactor([]secret.Key{secret.New(redactTestKey)})
	// Random hex between the keys, so that the body stays over the
	// whole-read limit once compressed.
	rnd := rand.New(rand.NewChaCha8([32]byte{1}))
	var in strings.Builder
	noise := make([]byte, 48)
	for in.Len() < 4*maxRedactWhole {
		for i := range noise {
			noise[i] = byte(rnd.Uint32())
		}
		in.WriteString(hex.EncodeToString(noise) + " " + redactTestKey + "\n")
	}
	want := strings.ReplaceAll(in.String(), redactTestKey, secret.Mask(redactTestKey))
	for enc, body := range map[string][]byte{"gzip": gz(in.String()), "deflate": zl(in.String())} {
		if len(body) <= maxRedactWhole {
			t.Fatalf("%s: test body compresses to %d bytes, under the whole-read limit", enc, len(body))
		}
		resp, cc := errorResponse(500, bytes.NewReader(body), "Content-Encoding", enc)
		normalizeEncoding(resp)
		redactErrorBody(resp, r)
		got, err := io.ReadAll(resp.Body)
		if err != nil || string(got) != want {
			t.Fatalf("%s: %d bytes, %v; want the %d masked bytes", enc, len(got), err, len(want))
		}
		if h := resp.Header.Get("Content-Encoding"); h != "" {
			t.Errorf("%s: Content-Encoding %q left on a decoded body", enc, h)
		}
		_ = resp.Body.Close()
		if cc.closed != 1 {
			t.Errorf("%s: upstream body closed %d times", enc, cc.closed)
		}
	}
}

// TestWithheldBodyIsJSON: the reason quotes upstream's header, whatever it
// holds, and the answer stays valid JSON.
func TestWithheldBodyIsJSON(t *testing.T) {
	r := secret.NewRedactor([]secret.Key{secret.New(redactTestKey)})
	resp, _ := errorResponse(401, strings.NewReader(redactTestKey), "Content-Encoding", "br\"\x01\\")
	normalizeEncoding(resp)
	redactErrorBody(resp, r)
	got, _ := io.ReadAll(resp.Body)
	if !json.Valid(got) || strings.Contains(string(got), redactTestKey) {
		t.Fatalf("withheld body %q: want valid JSON without the key", got)
	}
}
