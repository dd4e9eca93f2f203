package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keygate/keygate/simulator"
)

// TestOpenAISDK drives the gateway with the official OpenAI Go SDK, base
// URL at /v1, against the simulator: a chat completion and a streamed one
// succeed, and upstream only ever sees the pool key.
func TestOpenAISDK(t *testing.T) {
	key := testKeys(1)[0]
	sim := simulator.New(simulator.Options{Keys: map[string]simulator.Profile{key: {}}, Chunks: 5})
	t.Cleanup(func() { _ = sim.Close() })
	var mu sync.Mutex
	var creds []string // every credential-bearing header upstream saw
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, h := range []string{"Authorization", "X-Api-Key", "Api-Key", "Cookie"} {
			creds = append(creds, r.Header.Values(h)...)
		}
		mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	gw := startGateway(t, up.URL+simulator.PathPrefix, []string{key}, "GATEWAY_API_KEYS=client-token")

	client := openai.NewClient(
		option.WithBaseURL(gw.URL+"/v1/"),
		option.WithAPIKey("client-token"),
		option.WithMaxRetries(0),
	)
	params := openai.ChatCompletionNewParams{
		Model:    "openai/gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi")},
	}
	want := `Hello from openai/gpt-4o: you said "Say hi"`

	t.Run("completion", func(t *testing.T) {
		var resp *http.Response
		cc, err := client.Chat.Completions.New(t.Context(), params, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatalf("chat completion: %v", err)
		}
		if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != want || cc.Model != "openai/gpt-4o" {
			t.Errorf("completion %+v, want one choice saying %q", cc.Choices, want)
		}
		if cc.Usage.TotalTokens == 0 || cc.Usage.TotalTokens != cc.Usage.PromptTokens+cc.Usage.CompletionTokens {
			t.Errorf("usage %+v", cc.Usage)
		}
		if got := resp.Header.Get("X-Keygate-Key"); got != "1" {
			t.Errorf("X-Keygate-Key %q, want 1", got)
		}
	})

	t.Run("stream", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(t.Context(), params)
		defer stream.Close()
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("chunk %d does not continue the completion", chunks)
			}
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		if chunks < 2 {
			t.Errorf("%d chunks, want the reply in several", chunks)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != want || acc.Choices[0].FinishReason != "stop" {
			t.Errorf("accumulated %+v, want %q", acc.Choices, want)
		}
		if acc.Usage.TotalTokens == 0 {
			t.Errorf("accumulated usage %+v, want the stream's usage", acc.Usage)
		}
	})

	st := sim.Stats()
	if st.Unknown.Requests != 0 || st.Keys[key].Requests != 2 || st.Keys[key].ByStatus[200] != 2 {
		t.Errorf("simulator stats %+v, want 2 answered requests on the pool key, none unknown", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(creds) != 2 {
		t.Errorf("upstream credentials %d, want 2 (one Authorization per call)", len(creds))
	}
	for _, c := range creds {
		if strings.Contains(c, "client-token") || c != "Bearer "+key {
			t.Errorf("upstream saw credential %.20q…, want only Bearer <pool key>", c)
		}
	}
}
