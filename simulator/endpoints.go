package simulator

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keygate/keygate/secret"
)

// simModels are the models GET /models lists; any other name works for a
// completion too, except the not-found ones (x/broken, x/missing...).
var simModels = [...]struct{ id, name string }{
	{"openai/gpt-4o", "OpenAI: GPT-4o"},
	{"openai/gpt-4o-mini", "OpenAI: GPT-4o-mini"},
	{"openai/gpt-3.5-turbo", "OpenAI: GPT-3.5 Turbo"},
	{"anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet"},
	{"google/gemini-flash-1.5", "Google: Gemini Flash 1.5"},
	{"meta-llama/llama-3.1-8b-instruct", "Meta: Llama 3.1 8B Instruct"},
	{"mistralai/mistral-7b-instruct", "Mistral: Mistral 7B Instruct"},
}

type modelEntry struct {
	ID            string       `json:"id"`
	Object        string       `json:"object"`
	Created       int64        `json:"created"`
	OwnedBy       string       `json:"owned_by"`
	Name          string       `json:"name"`
	ContextLength int          `json:"context_length"`
	Pricing       modelPricing `json:"pricing"`
}

type modelPricing struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

// modelList is the body of GET /models, in the shape OpenAI and OpenRouter
// share: {"object":"list","data":[{"id":...,"object":"model",...}]}.
func modelList(created int64) []byte {
	list := struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{Object: "list"}
	for _, m := range simModels {
		owner, _, _ := strings.Cut(m.id, "/")
		list.Data = append(list.Data, modelEntry{
			ID: m.id, Object: "model", Created: created, OwnedBy: owner,
			Name: m.name, ContextLength: 128000,
			Pricing: modelPricing{Prompt: "0", Completion: "0"},
		})
	}
	b, err := json.Marshal(list)
	if err != nil {
		panic(err) // a fixed shape of strings and numbers always marshals
	}
	return b
}

// serveModels answers GET /models.
func (c *call) serveModels() {
	if c.f.status >= 400 {
		c.sendError(c.f.status, statusMessage(c.f.status), c.f.errorHint())
		return
	}
	c.sendBody(http.StatusOK, "application/json", c.s.models)
}

// echoReply is what /echo answers: the request as the simulator got it, so
// an end-to-end test can see which headers and bytes reached the upstream.
type echoReply struct {
	Method           string      `json:"method"`
	RequestURI       string      `json:"request_uri"`
	Path             string      `json:"path"`
	RawQuery         string      `json:"raw_query"`
	Host             string      `json:"host"`
	Proto            string      `json:"proto"`
	Headers          http.Header `json:"headers"`
	TransferEncoding []string    `json:"transfer_encoding,omitempty"`
	ContentLength    int64       `json:"content_length"`
	Body             string      `json:"body"`
	BodyLength       int         `json:"body_length"`
}

// serveEcho answers any method on /echo and /echo/...: the request itself
// as JSON, headers included, with the Authorization header's token masked
// (in -demo any client could read the key otherwise). Host and
// Transfer-Encoding are not in Go's header map, so they have fields of
// their own; Body is the body as a string (invalid UTF-8 shows as U+FFFD).
func (c *call) serveEcho() {
	bp, ok := c.readRequestBody()
	defer c.s.putBuf(bp)
	if !ok {
		return
	}
	body := *bp
	if c.f.status >= 400 {
		c.sendError(c.f.status, statusMessage(c.f.status), c.f.errorHint())
		return
	}
	r := c.r
	out, err := json.Marshal(echoReply{
		Method:           r.Method,
		RequestURI:       r.RequestURI,
		Path:             r.URL.Path,
		RawQuery:         r.URL.RawQuery,
		Host:             r.Host,
		Proto:            r.Proto,
		Headers:          maskedAuthorization(r.Header),
		TransferEncoding: r.TransferEncoding,
		ContentLength:    r.ContentLength,
		Body:             string(body),
		BodyLength:       len(body),
	})
	if err != nil {
		c.sendError(http.StatusInternalServerError, "encoding echo: "+err.Error(), hint{})
		return
	}
	c.sendBody(http.StatusOK, "application/json", out)
}

// maskedAuthorization is h with the token of each Authorization value
// masked, e.g. "Bearer sk-or-v1-…c0de": enough to tell which key came.
func maskedAuthorization(h http.Header) http.Header {
	vs, ok := h["Authorization"]
	if !ok {
		return h
	}
	out := h.Clone()
	for i, v := range vs {
		if scheme, token, ok := strings.Cut(v, " "); ok {
			out["Authorization"][i] = scheme + " " + secret.Mask(token)
		} else {
			out["Authorization"][i] = secret.Mask(v)
		}
	}
	return out
}
