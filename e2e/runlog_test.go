package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// masked is how the console may show raw: public prefix, ellipsis, last 4.
func masked(raw string) string { return "sk-or-v1-…" + raw[len(raw)-4:] }

// logSince returns the log lines written after mark (a length of gw.Logs).
func logSince(gw *gateway, mark int) []string {
	s := strings.TrimSuffix(gw.Logs.String()[mark:], "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// checkNoRawKeys fails if any part of a key that masking hides shows in text.
func checkNoRawKeys(t testing.TB, text string, keys []string) {
	t.Helper()
	for _, k := range keys {
		if hidden := k[len("sk-or-v1-") : len(k)-4]; strings.Contains(text, hidden) {
			t.Fatalf("a key shows unmasked in:\n%s", text)
		}
	}
}

func TestRunConsoleLines(t *testing.T) {
	keys := testKeys(3)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) {
		u.modelStatus["x/broken"] = 404
		u.modelDelay["ok/a"] = 100 * time.Millisecond // finishes last
	})
	gw := startGateway(t, up.Base(), keys, "KEY_ROTATION=round-robin", "LOG_LEVEL=info") // the console a user sees by default
	models := []string{"ok/a", "x/broken", "ok/b"}
	mark := len(gw.Logs.String())
	out := runOK(t, gw, "p", models, nil)
	lines := logSince(gw, mark)

	want := []string{"🔄 Processing 3 models...", "🔀 Key rotation mode: ROUND-ROBIN"}
	for i, e := range out.Responses {
		id := *e.KeyID
		want = append(want, fmt.Sprintf("🔑 Using API Key #%d (%s) for %s", id, masked(keys[id-1]), models[i]), "⏳ Calling "+models[i]+"...")
	}
	if len(lines) != len(want)+len(models)+1 || !slices.Equal(lines[:len(want)], want) {
		t.Fatalf("console:\n%s\nwant it to start with:\n%s\nthen one line per model and the total", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	var done []string
	for _, e := range out.Responses {
		if e.Status == "success" {
			done = append(done, "✅ "+e.Model+" completed in "+e.Duration+"s")
		} else {
			done = append(done, "❌ "+e.Model+" failed in "+e.Duration+"s: "+e.Error)
		}
	}
	got := slices.Clone(lines[len(want) : len(want)+len(models)])
	slices.Sort(got)
	slices.Sort(done)
	if !slices.Equal(got, done) {
		t.Fatalf("completion lines:\n%s\nwant (in any order):\n%s", strings.Join(got, "\n"), strings.Join(done, "\n"))
	}
	if last := lines[len(lines)-1]; last != "✨ All models completed in "+out.TotalDuration {
		t.Fatalf("last line %q, want the total %s", last, out.TotalDuration)
	}
	if !strings.HasPrefix(lines[len(lines)-2], "✅ ok/a completed in ") {
		t.Fatalf("the slowest model's line %q is not the last before the total", lines[len(lines)-2])
	}
}

func TestRunConsoleCooldownLines(t *testing.T) {
	keys := testKeys(3)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) { u.keyStatus[1], u.keyStatus[2] = 401, 429 })
	gw := startGateway(t, up.Base(), keys, "KEY_ROTATION=round-robin")
	mark := len(gw.Logs.String())
	for _, m := range []string{"m/a", "m/b"} {
		if out := runOK(t, gw, "p", []string{m}, nil); out.Successful != 1 {
			t.Fatalf("%+v", out)
		}
	}
	lines := logSince(gw, mark)
	text := strings.Join(lines, "\n")
	for _, want := range []string{"🧊 API Key #1 cooling down for 10m (401) after m/a", "🧊 API Key #2 cooling down for 30s (429) after m/b"} {
		i := slices.Index(lines, want)
		if i < 0 {
			t.Fatalf("no line %q in:\n%s", want, text)
		}
		// Between the request's calls and its total.
		call := slices.IndexFunc(lines[:i], func(l string) bool { return strings.HasPrefix(l, "⏳ Calling ") })
		total := slices.IndexFunc(lines[i:], func(l string) bool { return strings.HasPrefix(l, "✨ ") })
		if call < 0 || total < 0 {
			t.Fatalf("%q out of place in:\n%s", want, text)
		}
	}
	checkNoRawKeys(t, text, keys)
}

// TestRunConsoleRetryNamesModel: when models run at once and a key fails,
// the retry's line names its model like every other line of that model's
// call; only the key's cooldown line is the key's own.
func TestRunConsoleRetryNamesModel(t *testing.T) {
	keys := testKeys(4)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) { u.keyStatus[1], u.keyStatus[2] = 401, 429 })
	gw := startGateway(t, up.Base(), keys, "KEY_ROTATION=round-robin", "LOG_LEVEL=info")
	models := []string{"m/a", "m/b"}
	mark := len(gw.Logs.String())
	if out := runOK(t, gw, "p", models, nil); out.Successful != 2 {
		t.Fatalf("%+v", out)
	}
	lines := logSince(gw, mark)
	text := strings.Join(lines, "\n")
	retry := regexp.MustCompile(`^🔁 Retrying (m/[ab]) on API Key #[34] \(sk-or-v1-…[0-9a-f]{4}\)$`)
	retried := map[string]bool{}
	for _, l := range lines {
		if m := retry.FindStringSubmatch(l); m != nil {
			retried[m[1]] = true
		}
		switch {
		case strings.HasPrefix(l, "🔄 "), strings.HasPrefix(l, "🔀 "), strings.HasPrefix(l, "✨ "), strings.HasPrefix(l, "🧊 API Key #"):
			// the request's own lines, and the keys'
		case !strings.Contains(l, "m/a") && !strings.Contains(l, "m/b"):
			t.Errorf("line %q names no model", l)
		}
	}
	if len(retried) != 2 {
		t.Fatalf("want a retry line for each model, got %v in:\n%s", retried, text)
	}
	checkNoRawKeys(t, text, keys)
}

// Concurrent requests interleave their lines, but every line stays whole.
func TestRunConsoleConcurrentLinesStayWhole(t *testing.T) {
	keys := testKeys(4)
	up := newChatUpstream(t, keys)
	const requests, perRequest = 32, 3
	up.set(func(u *chatUpstream) {
		for r := 0; r < requests; r++ {
			u.modelDelay[fmt.Sprintf("r%d/m0", r)] = 20 * time.Millisecond
			u.modelStatus[fmt.Sprintf("r%d/m2", r)] = 500
		}
	})
	gw := startGateway(t, up.Base(), keys, "LOG_LEVEL=info") // the contract's lines only
	mark := len(gw.Logs.String())
	var wg sync.WaitGroup
	for r := 0; r < requests; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			models := make([]string, perRequest)
			for i := range models {
				models[i] = fmt.Sprintf("r%d/m%d", r, i)
			}
			runOK(t, gw, "p", models, nil)
		}()
	}
	wg.Wait()

	patterns := map[string]*regexp.Regexp{
		"start": regexp.MustCompile(`^🔄 Processing 3 models\.\.\.$`),
		"mode":  regexp.MustCompile(`^🔀 Key rotation mode: RANDOM$`),
		"key":   regexp.MustCompile(`^🔑 Using API Key #[1-4] \(sk-or-v1-…[0-9a-f]{4}\) for r\d+/m\d$`),
		"call":  regexp.MustCompile(`^⏳ Calling r\d+/m\d\.\.\.$`),
		"ok":    regexp.MustCompile(`^✅ r\d+/m[01] completed in \d+\.\d{2}s$`),
		"fail":  regexp.MustCompile(`^❌ r\d+/m2 failed in \d+\.\d{2}s: upstream 500: internal failure$`),
		"total": regexp.MustCompile(`^✨ All models completed in \d+\.\d{2}s$`),
	}
	count := map[string]int{}
	lines := logSince(gw, mark)
	for _, l := range lines {
		kind := ""
		for k, re := range patterns {
			if re.MatchString(l) {
				kind = k
			}
		}
		if kind == "" {
			t.Fatalf("line %q is not a whole console line; console:\n%s", l, strings.Join(lines, "\n"))
		}
		count[kind]++
	}
	want := map[string]int{"start": requests, "mode": requests, "key": requests * perRequest, "call": requests * perRequest,
		"ok": requests * 2, "fail": requests, "total": requests}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d %s lines, want %d", count[k], k, n)
		}
	}
}

func TestRunJSONLogs(t *testing.T) {
	keys := testKeys(3)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) { u.modelStatus["x/broken"] = 404 })
	gw := startGateway(t, up.Base(), keys, "KEY_ROTATION=round-robin", "LOG_FORMAT=json", "LOG_LEVEL=info")
	mark := len(gw.Logs.String())
	out := runOK(t, gw, "p", []string{"ok/a", "x/broken"}, nil)
	up.set(func(u *chatUpstream) { u.keyStatus[3] = 429 }) // next turn is key 3
	runOK(t, gw, "p", []string{"ok/c"}, nil)
	lines := logSince(gw, mark)
	checkNoRawKeys(t, strings.Join(lines, "\n"), keys)

	var events []map[string]any
	for _, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line is not a JSON object: %q", l)
		}
		if _, ok := ev["event"]; ok {
			events = append(events, ev)
		}
	}
	var names []string
	for _, ev := range events {
		names = append(names, ev["event"].(string))
	}
	wantNames := []string{"run_start", "key_rotation", "key_selected", "model_call", "key_selected", "model_call", "model_done", "model_done", "run_done",
		"run_start", "key_rotation", "key_selected", "model_call", "key_cooldown", "key_selected", "model_done", "run_done"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("events %v, want %v", names, wantNames)
	}

	for i, e := range out.Responses {
		sel := events[2+2*i]
		if sel["model"] != e.Model || sel["key_id"] != float64(*e.KeyID) || sel["key"] != masked(keys[*e.KeyID-1]) {
			t.Errorf("key_selected %v, want model %s, key_id %d, masked key", sel, e.Model, *e.KeyID)
		}
		var doneEv map[string]any
		for _, ev := range events[6:8] {
			if ev["model"] == e.Model {
				doneEv = ev
			}
		}
		if doneEv == nil {
			t.Fatalf("no model_done for %s", e.Model)
		}
		ms, isNum := doneEv["duration_ms"].(float64)
		d, _ := strconv.ParseFloat(e.Duration, 64)
		if doneEv["key_id"] != float64(*e.KeyID) || doneEv["status"] != e.Status || !isNum || ms < 0 || ms/1000 > d+0.01 {
			t.Errorf("model_done %v, want key_id %d, status %s, duration_ms ≈ %s s", doneEv, *e.KeyID, e.Status, e.Duration)
		}
		if errText, has := doneEv["error"]; (e.Status == "error") != has || (has && errText != e.Error) {
			t.Errorf("model_done %v: error field, want %q", doneEv, e.Error)
		}
	}
	if ev := events[8]; ev["duration_ms"] == nil {
		t.Errorf("run_done %v has no duration_ms", ev)
	}
	if cd := events[13]; cd["key_id"] != 3.0 || cd["status"] != 429.0 || cd["key"] != masked(keys[2]) {
		t.Errorf("key_cooldown %v, want key_id 3, status 429, masked key", cd)
	}
	if retry := events[14]; retry["model"] != "ok/c" || retry["key_id"] == 3.0 || retry["key_id"] == nil {
		t.Errorf("retry key_selected %v, want model ok/c on a key other than 3", retry)
	}
}
