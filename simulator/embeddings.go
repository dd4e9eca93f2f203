package simulator

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Embedding vectors: the default size (text-embedding-3-small's) and the
// most a request may ask for with "dimensions".
const (
	defaultDimensions = 1536
	maxDimensions     = 4096
	maxInputs         = 2048
)

// embeddingRequest is the part of an OpenAI embeddings request the
// simulator reads.
type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     int             `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// inputs reads "input": a string, an array of strings, or token arrays
// (which are counted, not read).
func (r *embeddingRequest) inputs() ([]string, error) {
	var one string
	if err := json.Unmarshal(r.Input, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(r.Input, &many); err == nil && len(many) > 0 {
		return many, nil
	}
	var tokens [][]int
	if err := json.Unmarshal(r.Input, &tokens); err == nil && len(tokens) > 0 {
		out := make([]string, len(tokens))
		for i, t := range tokens {
			out[i] = strings.Repeat("t ", len(t))
		}
		return out, nil
	}
	var flat []int
	if err := json.Unmarshal(r.Input, &flat); err == nil && len(flat) > 0 {
		return []string{strings.Repeat("t ", len(flat))}, nil
	}
	return nil, errors.New("input must be a string, an array of strings or an array of token arrays")
}

type embeddingItem struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// serveEmbeddings answers POST /embeddings in OpenAI's shape with
// OpenRouter's usage (cost included): one deterministic unit vector per
// input, derived from its text, as floats or, with "encoding_format":
// "base64" (what the openai SDKs ask for), as little-endian float32s.
func (c *call) serveEmbeddings() {
	bp, ok := c.readRequestBody()
	defer c.s.putBuf(bp)
	if !ok {
		return
	}
	var req embeddingRequest
	if err := json.Unmarshal(*bp, &req); err != nil {
		c.sendError(http.StatusBadRequest, "invalid JSON body: "+err.Error(), hint{})
		return
	}
	ins, err := req.inputs()
	switch {
	case req.Model == "":
		err = errors.New("model is required")
	case err == nil && len(ins) > maxInputs:
		err = errors.New("at most " + strconv.Itoa(maxInputs) + " inputs")
	case req.Dimensions < 0 || req.Dimensions > maxDimensions:
		err = errors.New("dimensions must be from 1 to " + strconv.Itoa(maxDimensions))
	}
	if err != nil {
		c.sendError(http.StatusBadRequest, err.Error(), hint{})
		return
	}
	c.model = req.Model
	if !c.modelDirectives(req.Model) || c.refuseByDirective(req.Model) {
		return
	}
	dims := req.Dimensions
	if dims == 0 {
		dims = defaultDimensions
	}
	tokens := 0
	items := make([]embeddingItem, len(ins))
	for i, in := range ins {
		var wc wordCounter
		wc.add(in)
		tokens += max(wc.n, 1)
		vec := embed(in, dims, c.s.opts.Seed)
		items[i] = embeddingItem{Object: "embedding", Index: i, Embedding: vec}
		if req.EncodingFormat == "base64" {
			items[i].Embedding = packFloats(vec)
		}
	}
	p, provider := priceOf(req.Model)
	total, pc, _ := p.cost(tokens, 0)
	q := ask{model: req.Model, price: p, prompt: tokens, maxTokens: -1, cost: total}
	if r := c.ks.admit(c.s.opts.Now(), &q); r != nil {
		c.sendRefusal(r)
		return
	}
	id := "gen-emb-" + strconv.FormatInt(c.s.opts.Now().Unix(), 10) + "-" + string(appendToken(nil, c.s.opts.Seed^mix64(c.s.ids.Add(1))))
	type usage struct {
		PromptTokens int             `json:"prompt_tokens"`
		TotalTokens  int             `json:"total_tokens"`
		Cost         json.RawMessage `json:"cost"`
		CostDetails  map[string]any  `json:"cost_details"`
		IsBYOK       bool            `json:"is_byok"`
	}
	c.sendJSON(struct {
		ID       string          `json:"id"`
		Object   string          `json:"object"`
		Data     []embeddingItem `json:"data"`
		Model    string          `json:"model"`
		Provider string          `json:"provider"`
		Usage    usage           `json:"usage"`
	}{id, "list", items, req.Model, provider, usage{
		PromptTokens: tokens, TotalTokens: tokens, Cost: appendUSD(nil, total),
		CostDetails: map[string]any{
			"upstream_inference_cost":             nil,
			"upstream_inference_prompt_cost":      json.RawMessage(appendUSD(nil, pc)),
			"upstream_inference_completions_cost": 0,
		},
	}})
}

// embed is a unit vector of dims floats drawn from text and seed: the same
// text always gets the same vector.
func embed(text string, dims int, seed uint64) []float32 {
	v := make([]float32, dims)
	x := seed ^ fnv64(text)
	var sum float64
	for i := range v {
		x = mix64(x + uint64(i))
		f := unitFloat(x)*2 - 1
		v[i] = float32(f)
		sum += f * f
	}
	norm := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= norm
	}
	return v
}

// packFloats is v as base64 of little-endian float32s, OpenAI's
// encoding_format "base64".
func packFloats(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}
