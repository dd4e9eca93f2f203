package simulator

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keygate/keygate/secret"
)

type modelEntry struct {
	ID                  string            `json:"id"`
	Object              string            `json:"object"`
	CanonicalSlug       string            `json:"canonical_slug"`
	HuggingFaceID       string            `json:"hugging_face_id"`
	Name                string            `json:"name"`
	Created             int64             `json:"created"`
	Description         string            `json:"description"`
	ContextLength       int               `json:"context_length"`
	Architecture        modelArchitecture `json:"architecture"`
	Pricing             modelPricing      `json:"pricing"`
	TopProvider         topProvider       `json:"top_provider"`
	PerRequestLimits    *struct{}         `json:"per_request_limits"`
	SupportedParameters []string          `json:"supported_parameters"`
	DefaultParameters   *struct{}         `json:"default_parameters"`
	SupportedVoices     []string          `json:"supported_voices"`
	Links               modelLinks        `json:"links"`
	ExpirationDate      *string           `json:"expiration_date"`
}

type modelArchitecture struct {
	Modality         string   `json:"modality"`
	InputModalities  []string `json:"input_modalities"`
	OutputModalities []string `json:"output_modalities"`
	Tokenizer        string   `json:"tokenizer"`
	InstructType     *string  `json:"instruct_type"`
}

type modelPricing struct {
	Prompt            string `json:"prompt"`
	Completion        string `json:"completion"`
	Request           string `json:"request"`
	Image             string `json:"image"`
	WebSearch         string `json:"web_search"`
	InternalReasoning string `json:"internal_reasoning"`
}

type topProvider struct {
	ContextLength       int  `json:"context_length"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
	IsModerated         bool `json:"is_moderated"`
}

type modelLinks struct {
	Details string `json:"details"`
}

// chatParameters are the supported_parameters of every chat model listed.
var chatParameters = []string{"max_tokens", "temperature", "top_p", "stop", "frequency_penalty", "presence_penalty", "seed", "response_format"}

// modelList is the body of GET /models in OpenRouter's shape, the one
// @openrouter/sdk validates: {"data":[{"id", "canonical_slug",
// "architecture", "pricing", "top_provider", ...}], "links", "total_count"}.
// OpenAI clients read only "data" and "id".
func modelList() []byte {
	list := struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
		Links  struct {
			Next *string `json:"next"`
		} `json:"links"`
		TotalCount int `json:"total_count"`
	}{Object: "list"}
	for _, m := range catalogue {
		list.Data = append(list.Data, entryOf(m))
	}
	list.TotalCount = len(list.Data)
	b, err := json.Marshal(list)
	if err != nil {
		panic(err) // a fixed shape of strings and numbers always marshals
	}
	return b
}

func entryOf(m modelInfo) modelEntry {
	slug, _, _ := strings.Cut(m.id, ":")
	e := modelEntry{
		ID: m.id, Object: "model", CanonicalSlug: slug, Name: m.name, Created: m.created,
		Description:   m.name + ", as simulated by keygate's upstream simulator.",
		ContextLength: m.context,
		Architecture: modelArchitecture{
			Modality: "text->text", InputModalities: []string{"text"}, OutputModalities: []string{"text"},
			Tokenizer: m.tokenizer,
		},
		Pricing: modelPricing{
			Prompt: perToken(m.price.prompt), Completion: perToken(m.price.completion),
			Request: "0", Image: "0", WebSearch: "0", InternalReasoning: "0",
		},
		TopProvider:         topProvider{ContextLength: m.context, IsModerated: m.provider == "OpenAI"},
		SupportedParameters: chatParameters,
		SupportedVoices:     nil,
		Links:               modelLinks{Details: "/api/v1/models/" + slug + "/endpoints"},
	}
	if m.instruct != "" {
		e.Architecture.InstructType = &m.instruct
	}
	if m.embedding {
		e.Architecture.Modality = "text->embeddings"
		e.Architecture.OutputModalities = []string{"embeddings"}
		e.SupportedParameters = []string{}
	} else {
		e.TopProvider.MaxCompletionTokens = &m.price.maxOutput
	}
	return e
}

// serveModels answers GET /models.
func (c *call) serveModels() {
	if c.f.status >= 400 {
		c.sendStatus(c.f.status, c.f.errorHint())
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
		c.sendStatus(c.f.status, c.f.errorHint())
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
