package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

// What one /run may make keygate hold, whatever its models answer: the
// upstream answers it reads, all models together (not each), and the
// bodies it sends, one per model (each is the model's name and the one
// shared encoding of prompt and params).
const (
	maxRunAnswers = 32 << 20
	maxRunBodies  = 64 << 20
)

// errRunAnswersTooLarge ends the reading of a /run's answers past
// maxRunAnswers.
var errRunAnswersTooLarge = errors.New("upstream answers of this /run are too large: over 32 MiB in all")

// runBudget counts the answer bytes a /run read, over all its models.
type runBudget struct{ used atomic.Int64 }

// budgetReader reads an answer within a /run's budget.
type budgetReader struct {
	r io.Reader
	b *runBudget
}

func (b budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.b.used.Add(int64(n)) > maxRunAnswers {
		return n, errRunAnswersTooLarge
	}
	return n, err
}

// runResponse is POST /run's answer, fields in the contract's order.
type runResponse struct {
	Prompt        string      `json:"prompt"`
	TotalDuration string      `json:"total_duration"`
	TotalModels   int         `json:"total_models"`
	Successful    int         `json:"successful"`
	Failed        int         `json:"failed"`
	KeyRotation   string      `json:"key_rotation"`
	Responses     []runResult `json:"responses"`
}

type runResult struct {
	Model    string `json:"model"`
	Output   string `json:"output"`
	Status   string `json:"status"`
	Duration string `json:"duration"`
	KeyID    *int   `json:"key_id"`
	Usage    *usage `json:"usage,omitempty"`
	// FinishReason is why a successful answer ended, as upstream said
	// ("stop", "length" at max_tokens, "content_filter"): an output cut
	// at max_tokens is a success, and without it looks whole.
	FinishReason string `json:"finish_reason,omitempty"`
	Error        string `json:"error,omitempty"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// attribution headers are passed from the /run client to upstream:
// OpenRouter uses them to credit the calling app.
var attribution = [...]string{"HTTP-Referer", "X-Title"}

// run sends one prompt to several models at once.
func (s *Server) run(c echo.Context) error {
	r, w := c.Request(), c.Response()
	if len(relay.Codings(r.Header)) > 0 {
		// RFC 7694: a 415 names the codings the server reads.
		w.Header().Set("Accept-Encoding", "identity")
		writeJSON(w, http.StatusUnsupportedMediaType, runError{Error: "request body has a Content-Encoding: /run reads only an unencoded JSON body; send it without Content-Encoding"})
		return nil
	}
	body, err := readBody(w, r, bodyLimits{max: s.o.MaxBodyBytes, timeout: s.o.ReadBodyTimeout})
	if err != nil {
		writeBodyError(err, s.o.MaxBodyBytes, func(code int, msg string) { writeJSON(w, code, runError{Error: msg}) })
		return nil
	}
	req, err := decodeRunRequest(body, s.o.RunMaxModels)
	if err == nil {
		err = req.buildShared(req.Stream)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, runError{Error: err.Error()})
		return nil
	}
	if int64(len(req.shared)+512)*int64(len(req.Models)) > maxRunBodies {
		writeJSON(w, http.StatusRequestEntityTooLarge, runError{Error: "prompt and params times models is too large: every model gets its own copy, and a /run may send at most 64 MiB in all; send fewer models or a shorter prompt"})
		return nil
	}
	body = nil
	if req.Stream {
		return s.runStream(c, req)
	}
	st := s.o.Strategy
	if req.RandomKey != nil {
		st = s.strategies.random
		if !*req.RandomKey {
			st = s.strategies.roundRobin
		}
	}

	start := time.Now()
	log := s.o.Logger
	logRunStart(log, len(req.Models), st)

	calls, results := s.leaseModels(r, req, st, nil)

	var wg sync.WaitGroup
	budget := &runBudget{}
	for i := range calls {
		if calls[i].First.Key == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.leave()
			results[i] = s.callModel(r, req, &calls[i], budget)
		}()
	}
	wg.Wait()

	out := runSummary(log, req, st, results, start)
	if r.Context().Err() != nil {
		// Nobody is left to read the answer: counted as the passthrough
		// counts a client that left.
		w.WriteHeader(StatusClientClosed)
		return nil
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// runSummary is a /run's answer document over its models' results, the
// plain form's body and the streamed form's done event, and logs its
// console line.
func runSummary(log *slog.Logger, req *runRequest, st keyring.Strategy, results []runResult, start time.Time) runResponse {
	out := runResponse{Prompt: req.Prompt, TotalModels: len(req.Models), KeyRotation: st.Name(), Responses: results}
	for _, res := range results {
		if res.Status == "success" {
			out.Successful++
		} else {
			out.Failed++
		}
	}
	total := time.Since(start)
	out.TotalDuration = seconds(total) + "s"
	logInfo(log, "✨ All models completed in "+seconds(total)+"s", "event", "run_done", "duration_ms", total.Milliseconds(),
		"successful", out.Successful, "failed", out.Failed)
	return out
}

// leaseModels makes one call per model of req and leases each its first
// key up front, on the pool in force now (the leases carry this snapshot
// into Do, whatever a reload does meanwhile), distinct keys while there are
// enough, each with the MAX_IN_FLIGHT slot its call takes (every call
// with a lease must be followed by leave); a model that gets no slot or
// no key has its error entry in results, and fail, when set, is told its
// index and entry.
func (s *Server) leaseModels(r *http.Request, req *runRequest, st keyring.Strategy, fail func(i int, res *runResult)) ([]relay.Call, []runResult) {
	log := s.o.Logger
	calls := make([]relay.Call, len(req.Models))
	results := make([]runResult, len(req.Models))
	var spread keyring.Exclude // keys this request already holds, for distinct keys
	// Round-robin's successive turns are distinct keys already; excluding
	// the keys taken would shift its cursor off the sequence.
	distinct := st.Name() != keyring.NameRoundRobin
	rl := s.o.Relay.Snapshot()
	failed := func(i int, msg string) {
		results[i] = runResult{Model: req.Models[i], Status: "error", Duration: seconds(0), Error: msg}
		s.logDone(&results[i], 0)
		if fail != nil {
			fail(i, &results[i])
		}
	}
	for i, model := range req.Models {
		calls[i] = relay.Call{Strategy: st, Model: model, Free: freeModel(model), MaxTokens: req.maxTokens(), Client: clientOf(r, len(s.o.Tokens) > 0)}
		calls[i].Sized(req.bodySize(model))
		// The slot first: a model past MAX_IN_FLIGHT makes no call, so
		// it takes no key (the others' retries keep off the keys the
		// /run holds) and no line tells of a key or a call for it.
		if !s.enter() {
			failed(i, errOverloaded)
			continue
		}
		lease, err := s.leaseFirst(rl, &calls[i], &spread)
		if err != nil && spread.Len() > 0 {
			spread.Reset()
			lease, err = s.leaseFirst(rl, &calls[i], &spread)
		}
		if err != nil {
			s.leave()
			failed(i, err.Error())
			continue
		}
		if distinct {
			spread.Add(lease.Key.Slot())
		}
		calls[i].First = lease
		calls[i].OnRetry = func(k *keyring.Key) { logKey(log, model, k, true) }
		logKey(log, model, lease.Key, false)
		logInfo(log, "⏳ Calling "+model+"...", "event", "model_call", "model", model, "key_id", lease.Key.ID)
	}
	if distinct {
		// A model's retry keeps off the others' keys too, while it can.
		for i := range calls {
			calls[i].Spread = &spread
		}
	}
	return calls, results
}

// leaseFirst leases call's first key outside spread and outside the keys
// Do would not send it on (an account noted as unable to afford it, a
// free block), so that Do sends on the lease instead of picking again
// without the other models' keys in mind. When only spread's keys are left
// beside those, it fails, for the caller to drop spread; when none are, it
// leases outside spread alone and lets Do judge, as Do would anyway.
func (s *Server) leaseFirst(rl *relay.Relay, call *relay.Call, spread *keyring.Exclude) (relay.Lease, error) {
	var ex keyring.Exclude
	rl.Avoid(call, &ex) // as Do sees it, with nothing tried yet
	if ex.Len() == 0 {
		return rl.Acquire(call.Strategy, spread)
	}
	ex.Union(spread)
	lease, err := rl.Acquire(call.Strategy, &ex)
	if err != nil && spread.Len() == 0 {
		return rl.Acquire(call.Strategy, spread)
	}
	return lease, err
}

// errOverloaded is the error entry of a /run model past MAX_IN_FLIGHT:
// each model's call is a request in flight of its own, holding an upstream
// connection, a body and an answer.
const errOverloaded = "overloaded: too many requests in flight (MAX_IN_FLIGHT); retry shortly"

// logKey tells which key a model's call goes out on, first or on a retry.
// The line names the model: the calls of several models run at once.
func logKey(log *slog.Logger, model string, k *keyring.Key, retry bool) {
	msg := "🔑 Using API Key #" + k.Label + " (" + k.Secret.String() + ") for " + model
	if retry {
		msg = "🔁 Retrying " + model + " on API Key #" + k.Label + " (" + k.Secret.String() + ")"
	}
	logInfo(log, msg, "event", "key_selected", "model", model, "key_id", k.ID, "key", k.Secret, "retry", retry)
}

// callModel makes one model's chat completion and reads its answer.
func (s *Server) callModel(client *http.Request, req *runRequest, call *relay.Call, budget *runBudget) runResult {
	model := call.Model
	start := time.Now()
	res := s.completion(client, req, call, budget)
	// Go's own error text may quote a malformed upstream answer.
	res.Error = s.redact(res.Error)
	d := time.Since(start)
	res.Model, res.Duration = model, seconds(d)
	if call.Key != nil {
		id := call.Key.ID
		res.KeyID = &id
	}
	s.logDone(&res, d)
	return res
}

// logDone tells how a model's call ended.
func (s *Server) logDone(res *runResult, d time.Duration) {
	// The id as a number, or nil: a pointer is a value the log's masking
	// cannot see through, so it prints it with fmt and json and copies the
	// record, on every model's line (helper-61). JSON shows the same.
	var keyID any
	if res.KeyID != nil {
		keyID = *res.KeyID
	}
	if res.Status == "success" {
		logInfo(s.o.Logger, "✅ "+res.Model+" completed in "+res.Duration+"s"+stopNote(res.FinishReason), "event", "model_done", "model", res.Model,
			"key_id", keyID, "duration_ms", d.Milliseconds(), "status", res.Status, "finish_reason", res.FinishReason)
		return
	}
	logInfo(s.o.Logger, "❌ "+res.Model+" failed in "+res.Duration+"s: "+res.Error, "event", "model_done", "model", res.Model,
		"key_id", keyID, "duration_ms", d.Milliseconds(), "status", res.Status, "error", res.Error)
}

// sendChat makes one model's chat completion, streamed or not, through
// the relay: the answer, or the model's error entry when there is none.
func (s *Server) sendChat(client *http.Request, req *runRequest, call *relay.Call, stream bool) (*http.Response, *runResult) {
	body, err := req.chatBodyStream(call.Model, stream)
	if err != nil {
		s.o.Relay.Release(call.First)
		return nil, &runResult{Status: "error", Error: "encoding request: " + err.Error()}
	}
	ctx := client.Context()
	up, err := http.NewRequestWithContext(ctx, http.MethodPost, s.chatURL, nil)
	if err != nil {
		s.o.Relay.Release(call.First)
		return nil, &runResult{Status: "error", Error: "building request: " + err.Error()}
	}
	up.Header.Set("Content-Type", "application/json")
	up.Header.Set("Accept", "application/json")
	if stream {
		up.Header.Set("Accept", "text/event-stream")
	}
	for _, h := range attribution {
		if v := client.Header.Get(h); v != "" {
			up.Header.Set(h, v)
		}
	}
	resp, err := s.o.Relay.Do(up, body, call)
	if err != nil {
		return nil, &runResult{Status: "error", Error: describeCallError(ctx, err)}
	}
	// An answer upstream encoded unasked is read decoded, as the
	// passthrough's are (the relay decodes a 200 it judges, not an error
	// answer): its error message was quoted as compressed bytes.
	normalizeEncoding(resp)
	return resp, nil
}

func (s *Server) completion(client *http.Request, req *runRequest, call *relay.Call, budget *runBudget) runResult {
	resp, failed := s.sendChat(client, req, call, false)
	if failed != nil {
		return *failed
	}
	ctx := client.Context()
	late := relay.LateOf(resp)
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if ok && eventStream(resp.Header) {
		// Some OpenAI-compatible servers stream whatever was asked: read
		// it as the streamed /run does, where it was "invalid JSON".
		acc := streamAnswer{message: s.errorMessage}
		err := acc.read(budgetReader{r: resp.Body, b: budget}, true, late, func(string) {})
		s.charge(call, acc.usage, acc.cost)
		if err != nil {
			return runResult{Status: "error", Error: describeCallError(ctx, err), Usage: acc.usage}
		}
		return s.streamed(&acc)
	}
	data, err := io.ReadAll(budgetReader{r: resp.Body, b: budget})
	if err != nil {
		if ok {
			s.charge(call, nil, 0)
		}
		return runResult{Status: "error", Error: describeCallError(ctx, err)}
	}
	if !ok {
		return runResult{Status: "error", Error: "upstream " + strconv.Itoa(resp.StatusCode) + ": " + s.upstreamMessage(data)}
	}
	var cc chunk
	if err := json.Unmarshal(data, &cc); err != nil {
		s.charge(call, nil, 0)
		return runResult{Status: "error", Error: "upstream returned invalid JSON"}
	}
	usd, _ := usageCost(topLevel(data, "usage"))
	s.charge(call, cc.Usage, usd)
	if cc.failed() {
		// Counted against the key as the same error in a stream is.
		late.Event(data)
		return runResult{Status: "error", Error: "upstream error: " + s.errorMessage(data), Usage: cc.Usage}
	}
	if len(cc.Choices) == 0 {
		return runResult{Status: "error", Error: s.noMessage("", false), Usage: cc.Usage}
	}
	if m := &cc.Choices[0].Message; m.Content == nil || *m.Content == "" && (m.Refusal != "" || m.tools()) {
		return runResult{Status: "error", Error: s.noMessage(m.Refusal, m.tools()), Usage: cc.Usage}
	}
	// /run writes its own document, so unlike the passthrough's successful
	// answers, its outputs are masked too.
	return runResult{Status: "success", Output: s.redact(string(*cc.Choices[0].Message.Content)), Usage: cc.Usage,
		FinishReason: s.finishReason(cc.Choices[0].FinishReason)}
}

// maxFinishReason bounds the finish_reason /run repeats: OpenAI's and
// OpenRouter's are single words, and anything longer is no reason.
const maxFinishReason = 64

// finishReason is upstream's finish_reason as /run repeats it: masked as
// every other text of its document, and dropped when it is no word of
// letters, digits, '_' and '-' of at most maxFinishReason bytes, as every
// provider's is ("stop", "tool_calls", "MAX_TOKENS", "end_turn").
func (s *Server) finishReason(r string) string {
	if len(r) > maxFinishReason {
		return ""
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return ""
		}
	}
	return s.redact(r)
}

// stopNote is what a model's console line adds for its finish_reason: why
// an output may look cut.
func stopNote(reason string) string {
	switch reason {
	case "length":
		return " (cut at max_tokens)"
	case "content_filter":
		return " (stopped by a content filter)"
	}
	return ""
}

// charge counts one model's 2xx answer as the passthrough counts its
// answers, whatever /run makes of it (a tool call's answer has no message,
// yet costs as much): u's tokens and the cost usd (0 when unknown), or,
// when u is nil (the answer was cut short or upstream left its usage out),
// a budget poll soon, since upstream may charge it all the same; and a
// free model's request against its account's quota. Through the
// passthrough's counter, so that an answer ending after a reload counts
// for its key's secret, not its old id.
func (s *Server) charge(call *relay.Call, u *usage, usd float64) {
	k := call.Key
	if k == nil {
		return
	}
	if sp := s.o.Spender; sp != nil && call.Free {
		sp.UseFree(k)
	}
	switch c := s.pass.tokens.(type) {
	case nil:
	case keyedCounter:
		if u == nil {
			c.NoUsageOf(k)
			return
		}
		c.TokensOf(k, call.Model, u.PromptTokens, u.CompletionTokens)
		c.CostOf(k, call.Model, usd)
	default:
		if u != nil {
			c.Tokens(k.ID, call.Model, u.PromptTokens, u.CompletionTokens)
		}
	}
}

// upstreamMessage finds the human message of an upstream error body, at
// most maxUpstreamMessage bytes of valid UTF-8, its keys masked before it
// is cut (clip).
func (s *Server) upstreamMessage(data []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	text := ""
	if json.Unmarshal(data, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Message  string `json:"message"`
			Metadata struct {
				ProviderName string          `json:"provider_name"`
				Raw          json.RawMessage `json:"raw"`
			} `json:"metadata"`
		}
		var str string
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			text = obj.Message
			// OpenRouter's "Provider returned error" says what only in
			// metadata.raw, the provider's own error.
			if d := rawDetail(obj.Metadata.Raw); d != "" && !strings.Contains(text, d) {
				who := obj.Metadata.ProviderName
				if who != "" {
					who += ": "
				}
				text += " (" + who + d + ")"
			}
		} else if json.Unmarshal(e.Error, &str) == nil && str != "" {
			text = str
		}
	}
	if text == "" {
		text = string(data)
	}
	text = s.clip(strings.TrimSpace(strings.ToValidUTF8(text, "")), maxUpstreamMessage)
	if text == "" {
		return "no details"
	}
	return text
}

// noMessage words the error of an answer without text: what came in its
// place, a model's refusal (OpenAI's structured outputs send one instead
// of content) quoted, or tool calls, which /run does not show.
func (s *Server) noMessage(refusal string, tools bool) string {
	switch {
	case strings.TrimSpace(refusal) != "":
		return "the model refused: " + s.clip(strings.TrimSpace(refusal), maxUpstreamMessage)
	case tools:
		return "upstream returned no message: the model called tools, which /run does not show"
	}
	return "upstream returned no message"
}

// rawDetail is the message of a provider's raw error as OpenRouter passes
// it on (metadata.raw): a JSON text in a string, or JSON itself, its
// error.message or message read, else the string as it is.
func rawDetail(raw json.RawMessage) string {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		raw = json.RawMessage(text)
	}
	var e struct {
		Message string `json:"message"`
		Error   struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	switch {
	case json.Unmarshal(raw, &e) != nil:
		return strings.TrimSpace(text)
	case e.Error.Message != "":
		return strings.TrimSpace(e.Error.Message)
	}
	return strings.TrimSpace(e.Message)
}

// errorMessage words the error a 2xx answer or stream event carried: its
// top-level error object's message, else its first choice's, where
// OpenRouter puts an error met while the model wrote.
func (s *Server) errorMessage(data []byte) string {
	var w struct {
		Error   json.RawMessage `json:"error"`
		Choices []struct {
			Error json.RawMessage `json:"error"`
		} `json:"choices"`
	}
	if json.Unmarshal(data, &w) == nil {
		switch {
		case len(w.Error) > 0:
		case len(w.Choices) > 0 && isObject(w.Choices[0].Error):
			data = append(append([]byte(`{"error":`), w.Choices[0].Error...), '}')
		default:
			// finish_reason "error" alone: the body is no message.
			return "no details"
		}
	}
	return s.upstreamMessage(data)
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '{' }

// maxUpstreamMessage bounds the upstream text quoted in a /run error.
const maxUpstreamMessage = 200

// describeCallError words a failed call for the model's entry.
func describeCallError(ctx context.Context, err error) string {
	var nk *relay.NoKeyError
	switch {
	case errors.As(err, &nk):
		return nk.Error()
	case ctx.Err() != nil:
		return "client went away"
	case errors.Is(err, relay.ErrUpstreamTimeout):
		return "upstream timeout"
	case errors.Is(err, errRunAnswersTooLarge):
		return err.Error()
	}
	var ae *relay.AttemptError
	if errors.As(err, &ae) {
		err = ae.Err
	}
	return fmt.Sprintf("upstream request failed: %v", err)
}

// seconds renders d as seconds with two decimals.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }

// logRunStart tells a /run's start, in both forms: how many models, and the
// rotation its keys are picked by.
func logRunStart(log *slog.Logger, models int, st keyring.Strategy) {
	logInfo(log, processingLine(models), "event", "run_start", "models", models)
	logInfo(log, "🔀 Key rotation mode: "+strings.ToUpper(st.Name()), "event", "key_rotation", "strategy", st.Name())
}

// processingLine is the console line of a /run's start: "🔄 Processing 4
// models...", and "1 model" for one.
func processingLine(models int) string {
	noun := " models..."
	if models == 1 {
		noun = " model..."
	}
	return "🔄 Processing " + strconv.Itoa(models) + noun
}

// logInfo logs msg with args at info as log.Info does, without asking the
// runtime for its caller: slog.Logger.Info calls runtime.Callers on every
// line for a source position that no handler of keygate's prints, 4 % of a
// /run's CPU over its 3 + 3 per model lines (helper-61; the access line
// skips it the same way).
func logInfo(log *slog.Logger, msg string, args ...any) {
	ctx := context.Background()
	if !log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	h := log.Handler()
	if len(args) >= 2 && args[0] == console.EventKey && !console.EventFields(h) {
		// The text console prints an event's message alone: its other
		// fields would only be copied into the record and scanned for keys.
		args = args[:2]
	}
	rec.Add(args...)
	_ = h.Handle(ctx, rec)
}
