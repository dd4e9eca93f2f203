package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// errorTransport answers every call with one error status and body.
type errorTransport struct {
	status int
	body   string
}

func (e errorTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return &http.Response{StatusCode: e.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(e.body)), Request: r}, nil
}

// TestRunProviderErrorDetail: an OpenRouter error that only says
// "Provider returned error" has the provider's own error, in
// metadata.raw, in the model's entry, plain and streamed; the entry said
// "upstream 400: Provider returned error", and the user could not tell a
// prompt too long from anything else.
func TestRunProviderErrorDetail(t *testing.T) {
	const generic = `{"error":{"code":400,"message":"Provider returned error","metadata":{"provider_name":"OpenAI","raw":%s}}}`
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"raw JSON in a string", `"{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens.\",\"type\":\"invalid_request_error\"}}"`,
			"upstream 400: Provider returned error (OpenAI: This model's maximum context length is 8192 tokens.)"},
		{"raw JSON", `{"message":"prompt is too long"}`, "upstream 400: Provider returned error (OpenAI: prompt is too long)"},
		{"raw text", `"  Bad Request: max_tokens too large "`, "upstream 400: Provider returned error (OpenAI: Bad Request: max_tokens too large)"},
		{"raw null", `null`, "upstream 400: Provider returned error"},
		{"raw says what the message says", `"Provider returned error"`, "upstream 400: Provider returned error"},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{true: ", streamed"}[stream], func(t *testing.T) {
				s := newChargeServer(t, errorTransport{400, strings.Replace(generic, "%s", tc.raw, 1)}, &fakeSpender{})
				_, out := runOneModel(t, s, stream)
				if res := out.Responses[0]; res.Status != "error" || res.Error != tc.want {
					t.Errorf("error %q, want %q", res.Error, tc.want)
				}
			})
		}
	}
}
