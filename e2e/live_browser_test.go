package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate/app"
	bt "github.com/keygate/keygate/internal/browsertest"
	"github.com/keygate/keygate/simulator"
)

const (
	liveClientTok = "client-token-for-the-page"
	liveAdminTok  = "admin-token-for-the-page"
)

// liveGateway is a served keygate (budget polls, the status page, the admin
// API) over the simulator with two accounts of two keys each.
type liveGateway struct {
	*app.App
	URL  string
	Sim  *simulator.Server
	Keys []string
}

func startLiveGateway(t *testing.T) *liveGateway {
	t.Helper()
	keys := testKeys(4)
	sim, err := simulator.Start(simulator.Options{
		Accounts: []simulator.Account{
			{ID: "user_page_a", Balance: 25, Purchased: 25, Keys: []simulator.KeySpec{
				{Secret: keys[0], Limit: 5, LimitReset: "monthly", Usage: 0.8}, {Secret: keys[1]},
			}},
			{ID: "user_page_b", Balance: 3, FreeUsedToday: 12, Keys: []simulator.KeySpec{
				{Secret: keys[2], Limit: 1, LimitReset: "daily", Usage: 0.4}, {Secret: keys[3]},
			}},
		},
		Latency:       20 * time.Millisecond,
		LatencySpread: 60 * time.Millisecond,
		Seed:          1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	a, _ := newApp(t, sim.BaseURL(), keys, app.Options{},
		"GATEWAY_API_KEYS="+liveClientTok, "ADMIN_TOKEN="+liveAdminTok, "BUDGET_POLL_INTERVAL=2s", "LOG_LEVEL=info")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &liveGateway{App: a, URL: "http://" + ln.Addr().String(), Sim: sim, Keys: keys}
}

// traffic sends chat calls with the client token until the test ends.
func (g *liveGateway) traffic(t *testing.T, workers int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{}}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/v1/chat/completions",
					strings.NewReader(`{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("Authorization", "Bearer "+liveClientTok)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				select {
				case <-ctx.Done():
				case <-time.After(30 * time.Millisecond):
				}
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		client.CloseIdleConnections()
	})
}

// disabled is key id's disabled field in GET /keys.
func (g *liveGateway) disabled(t *testing.T, id int) bool {
	t.Helper()
	req := newRequest(t, http.MethodGet, g.URL+"/keys", nil)
	req.Header.Set("Authorization", "Bearer "+liveClientTok)
	_, body := do(t, req)
	var ks struct {
		Keys []struct {
			ID       int  `json:"id"`
			Disabled bool `json:"disabled"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &ks); err != nil {
		t.Fatalf("/keys: %v", err)
	}
	for _, k := range ks.Keys {
		if k.ID == id {
			return k.Disabled
		}
	}
	t.Fatalf("/keys has no key %d", id)
	return false
}

// TestStatusPageLive drives the status page in headless Chromium against a
// real gateway over the simulator.
func TestStatusPageLive(t *testing.T) {
	b := bt.Browser(t)
	g := startLiveGateway(t)
	g.traffic(t, 2)

	t.Run("every key; a revoked key's row turns resting without a reload", func(t *testing.T) {
		ctx := bt.Tab(t, b)
		bt.Do(t, ctx, chromedp.Navigate(g.URL+"/"))
		bt.Login(t, ctx, liveClientTok)
		bt.Until(t, ctx, "all rows", bt.RowsJS+` === 4`)
		text := bt.Eval[string](t, ctx, `document.body.innerText`)
		for i, k := range g.Keys {
			mask := "…" + k[len(k)-4:]
			if !strings.Contains(text, fmt.Sprintf("#%d", i+1)) || !strings.Contains(text, mask) {
				t.Fatalf("page lacks key #%d (%s):\n%s", i+1, mask, text)
			}
			if strings.Contains(text, k) {
				t.Fatalf("page shows key #%d in the clear", i+1)
			}
		}
		bt.Eval[chromedp.Void](t, ctx, `window.__sameDocument = true`)
		g.Sim.Revoke(g.Keys[1])
		bt.UntilWithin(t, ctx, bt.LiveWait, "key 2 resting", `document.querySelector('tr[data-key="2"]').dataset.state === 'resting'`)
		if !bt.Eval[bool](t, ctx, `window.__sameDocument === true`) {
			t.Fatal("the page reloaded to show the change")
		}
		if bt.Eval[bool](t, ctx, `document.querySelectorAll('button[data-action]').length > 0`) {
			t.Fatal("admin buttons for a client token")
		}
	})

	t.Run("a wrong token shows nothing", func(t *testing.T) {
		ctx := bt.Tab(t, b)
		bt.Do(t, ctx, chromedp.Navigate(g.URL+"/"))
		bt.Until(t, ctx, "prompt", `!document.getElementById('login').hidden`)
		bt.Login(t, ctx, "not-a-token")
		bt.Until(t, ctx, "refusal", `!document.getElementById('login-error').hidden`)
		if !bt.Eval[bool](t, ctx, bt.RowsJS+` === 0 && document.getElementById('data').hidden && !document.body.innerText.includes('sk-or-')`) {
			t.Fatal("a wrong token showed pool data")
		}
	})

	t.Run("admin buttons disable and enable a key", func(t *testing.T) {
		ctx := bt.Tab(t, b)
		bt.Do(t, ctx, chromedp.Navigate(g.URL+"/"))
		bt.Login(t, ctx, liveAdminTok)
		btn := func(action string) chromedp.CSS {
			return chromedp.CSS(fmt.Sprintf(`button[data-action=%q][data-id="3"]`, action))
		}
		bt.Do(t, ctx, chromedp.WaitVisible(btn("disable")), chromedp.Click(btn("disable")))
		bt.Until(t, ctx, "key 3 disabled", `document.querySelector('tr[data-key="3"]').dataset.state === 'disabled'`)
		if !g.disabled(t, 3) {
			t.Fatal("/keys: key 3 not disabled after the button")
		}
		bt.Do(t, ctx, chromedp.WaitVisible(btn("enable")), chromedp.Click(btn("enable")))
		bt.Until(t, ctx, "key 3 back", `document.querySelector('tr[data-key="3"]').dataset.state !== 'disabled'`)
		if g.disabled(t, 3) {
			t.Fatal("/keys: key 3 still disabled after enable")
		}
	})

	t.Run("screenshot under load", func(t *testing.T) {
		g.traffic(t, 4)
		g.Sim.Revoke(g.Keys[1]) // as the first subtest did, when it ran
		ctx := bt.Tab(t, b)
		bt.Do(t, ctx, chromedp.Navigate(g.URL+"/"))
		bt.Login(t, ctx, liveAdminTok)
		bt.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`button[data-action="disable"][data-id="4"]`)),
			chromedp.Click(chromedp.CSS(`button[data-action="disable"][data-id="4"]`)))
		bt.Until(t, ctx, "a busy pool", `document.querySelector('tr[data-key="4"]').dataset.state === 'disabled' && document.querySelector('tr[data-key="2"]').dataset.state === 'resting' && document.querySelector('tr[data-key="1"]').innerText.includes('$')`)
		png := bt.Screenshot(t, ctx, "status-page-e2e.png")
		if os.Getenv("KEYGATE_UPDATE_SCREENSHOT") == "1" {
			if err := os.WriteFile(filepath.Join("..", "docs", "status-page.png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
}
