package simulator

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// keptGenerations is how many answers GET /generation can describe: the
// latest ones, across accounts. OpenRouter keeps them for good; a test or a
// demo asks about the answer it just had.
const keptGenerations = 4096

// genID is a generation id as a map key, without a string per answer.
type genID struct {
	b [48]byte
	n uint8
}

// genRecord is what GET /generation tells of one answer.
type genRecord struct {
	id         genID
	acct       *account
	model      string
	provider   string
	created    int64
	prompt     int
	completion int
	cost       int64 // nano-USD
	streamed   bool
	cut        bool
}

// generations holds the latest answers by id, each with the account that
// made it: only that account's keys may read it (OpenRouter answers 404 to
// another's), which is what a gateway over several accounts has to meet.
type generations struct {
	mu   sync.Mutex
	byID map[genID]int
	ring []genRecord // keptGenerations, made on the first answer
	next int
	full bool
}

// keep records cp, answered on an account's key.
func (g *generations) keep(cp *completion, a *account, streamed bool) {
	var id genID
	id.n = uint8(copy(id.b[:], cp.id()))
	total, _, _ := cp.cost()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ring == nil {
		g.byID = make(map[genID]int, keptGenerations)
		g.ring = make([]genRecord, keptGenerations)
	}
	slot := &g.ring[g.next]
	if g.full {
		delete(g.byID, slot.id)
	}
	*slot = genRecord{id: id, acct: a, model: cp.model, provider: cp.provider, created: cp.created,
		prompt: cp.prompt, completion: cp.completionTokens(), cost: total, streamed: streamed, cut: cp.cut}
	g.byID[id] = g.next
	g.next++
	if g.next == keptGenerations {
		g.next, g.full = 0, true
	}
}

// lookup returns the record of id if a's keys may read it.
func (g *generations) lookup(id string, a *account) (genRecord, bool) {
	var k genID
	if len(id) > len(k.b) {
		return genRecord{}, false
	}
	k.n = uint8(copy(k.b[:], id))
	g.mu.Lock()
	defer g.mu.Unlock()
	i, ok := g.byID[k]
	if !ok || g.ring[i].acct != a {
		return genRecord{}, false
	}
	return g.ring[i], true
}

// serveGeneration answers GET /generation?id= as OpenRouter does: the
// answer's cost and tokens for the account that made it, 404 for any other.
func (c *call) serveGeneration() {
	id := c.r.URL.Query().Get("id")
	if id == "" {
		c.sendError(http.StatusBadRequest, "id is required", hint{})
		return
	}
	g, ok := c.s.gens.lookup(id, c.ks.acct)
	if !ok {
		c.sendError(http.StatusNotFound, "Generation not found", hint{})
		return
	}
	c.sendBody(http.StatusOK, "application/json", g.appendJSON(nil))
}

// appendJSON appends the record as GET /generation's {"data":{…}}, every
// field @openrouter/sdk's GenerationResponse requires.
func (g *genRecord) appendJSON(b []byte) []byte {
	finish := "stop"
	if g.cut {
		finish = "length"
	}
	b = append(b, `{"data":{"id":"`...)
	b = append(b, g.id.b[:g.id.n]...)
	b = append(b, `","upstream_id":"`...)
	b = append(b, g.id.b[:g.id.n]...)
	b = append(b, `","total_cost":`...)
	b = appendUSD(b, g.cost)
	b = append(b, `,"usage":`...)
	b = appendUSD(b, g.cost)
	b = append(b, `,"upstream_inference_cost":null,"cache_discount":null,"created_at":"`...)
	b = time.Unix(g.created, 0).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","model":`...)
	b = strconv.AppendQuote(b, g.model)
	b = append(b, `,"provider_name":`...)
	b = strconv.AppendQuote(b, g.provider)
	b = append(b, `,"api_type":"completions","data_region":"global","app_id":null,"origin":"","router":null,"preset_id":null,`+
		`"is_byok":false,"cancelled":false,"streamed":`...)
	b = strconv.AppendBool(b, g.streamed)
	b = append(b, `,"latency":0,"moderation_latency":null,"generation_time":0,"finish_reason":"`...)
	b = append(b, finish...)
	b = append(b, `","native_finish_reason":"`...)
	b = append(b, finish...)
	b = append(b, `","tokens_prompt":`...)
	b = strconv.AppendInt(b, int64(g.prompt), 10)
	b = append(b, `,"tokens_completion":`...)
	b = strconv.AppendInt(b, int64(g.completion), 10)
	b = append(b, `,"native_tokens_prompt":`...)
	b = strconv.AppendInt(b, int64(g.prompt), 10)
	b = append(b, `,"native_tokens_completion":`...)
	b = strconv.AppendInt(b, int64(g.completion), 10)
	return append(b, `,"native_tokens_reasoning":0,"native_tokens_cached":0,"native_tokens_completion_images":null,`+
		`"num_media_prompt":null,"num_media_completion":null,"num_input_audio_prompt":null,"num_search_results":null,`+
		`"num_fetches":null,"web_search_engine":null,"provider_responses":null,"service_tier":null,"external_user":null,`+
		`"http_referer":null,"user_agent":null,"workspace_id":null}}`...)
}
